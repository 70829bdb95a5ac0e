"use strict";
// The page talks to the JSON API only. All product text is inserted as text, never as HTML.

const $ = (selector, root = document) => root.querySelector(selector);
const knownProducts = new Map(); // product_id → product, to name the products in the event list
const USER_KEY = "search-demo-user";

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.error?.message || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const number = (value) => (value === null || value === undefined ? "–" : Number(value).toFixed(3));
const price = (value) => Number(value ?? 0).toFixed(2);

// Loads into a result region: busy while loading, and only the latest request's answer is shown.
async function refresh(region, load, render) {
  const ticket = (region.ticket = (region.ticket || 0) + 1);
  region.setAttribute("aria-busy", "true");
  try {
    const data = await load();
    if (ticket === region.ticket) render(data);
  } catch (error) {
    if (ticket === region.ticket) {
      $(".status", region).textContent = `Error: ${error.message}`;
      $(".products", region)?.replaceChildren();
    }
  } finally {
    if (ticket === region.ticket) region.setAttribute("aria-busy", "false");
  }
}

function scoreText(product) {
  const parts = [`score ${number(product.score)}`];
  for (const [retriever, rank] of Object.entries(product.retrievers || {})) {
    parts.push(`${retriever} rank ${rank ?? "–"}`);
  }
  for (const [source, score] of Object.entries(product.scores || {})) {
    parts.push(`${source} ${number(score)}`);
  }
  return parts.join(" · ");
}

// `list`: the answer the product was listed in; its request_id and the product's position attribute the events.
function productItem(product, list) {
  knownProducts.set(product.product_id, product);
  const attribution = list?.request_id ? { request_id: list.request_id, position: product.position } : null;
  const item = element("li", "product");
  item.dataset.productId = product.product_id;
  const open = element("button", "product-name", product.name);
  open.type = "button";
  open.addEventListener("click", () => openProduct(product, attribution));
  const meta = element("p", "meta");
  meta.append(
    element("span", "brand", product.brand || "no brand"), " · ",
    element("span", "category", product.category), " · ",
    element("span", "price", price(product.price)), " · ",
    element("span", "rating", `★ ${Number(product.rating ?? 0).toFixed(1)} (${product.rating_count ?? 0})`),
  );
  item.append(open, meta, element("p", "scores", scoreText(product)));
  return item;
}

function showProducts(region, status, list) {
  $(".status", region).textContent = status;
  $(".products", region).replaceChildren(...list.results.map((product) => productItem(product, list)));
}

const experimentText = (body) => (body.experiment ? `, experiment variant ${body.experiment.variant}` : "");

// ---- search ------------------------------------------------------------------------------------
const searchForm = $("#search-form");
const searchRegion = $("#search-results");

function searchQuery() {
  const form = new FormData(searchForm);
  const params = new URLSearchParams({ q: form.get("q").trim(), mode: form.get("mode"), limit: "10" });
  for (const name of ["category", "brand", "min_price", "max_price"]) {
    if (form.get(name)) params.set(name, form.get(name));
  }
  if (params.get("mode") === "hybrid") params.set("explain", "true");
  if (form.get("personalize") && currentUser()) params.set("user_id", currentUser());
  return params;
}

searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const params = searchQuery();
  refresh(searchRegion, () => api(`search?${params}`), (body) => {
    const count = body.results.length;
    const personal = body.personalized ? `, personalised for ${body.personalized.user_id}` : "";
    showProducts(searchRegion, `${count} result${count === 1 ? "" : "s"} for “${body.query}” ` +
      `(${body.mode}${personal}${experimentText(body)}, ${body.took_ms} ms)`, body);
  });
});

// A changed filter re-runs the current search.
searchForm.addEventListener("change", (event) => {
  if (event.target.id !== "q" && $("#q").value.trim()) searchForm.requestSubmit();
});

async function loadFacets() {
  const facets = await api("facets");
  for (const [id, values] of [["category", facets.categories], ["brand", facets.brands]]) {
    const select = $(`#${id}`);
    for (const { value, count } of values) {
      const option = element("option", "", `${value} (${count})`);
      option.value = value;
      select.append(option);
    }
  }
}

// ---- product -----------------------------------------------------------------------------------
const productPanel = $("#product-panel");
const similarRegion = $("#similar-results");
let openProductId = null;
let openAttribution = null; // the list and position the open product was chosen from

function openProduct(product, attribution) {
  openProductId = product.product_id;
  openAttribution = attribution;
  productPanel.hidden = false;
  $("#product-name").textContent = product.name;
  $("#product-meta").textContent = [product.brand, product.category, product.sub_category, price(product.price),
    `★ ${Number(product.rating ?? 0).toFixed(1)} (${product.rating_count ?? 0} ratings)`].filter(Boolean).join(" · ");
  $("#product-description").textContent = product.description || "";
  $("#product-name").focus();
  recordEvent(product.product_id, "view");
  refresh(similarRegion, () => api(`products/${encodeURIComponent(product.product_id)}/similar?limit=5`),
    (body) => showProducts(similarRegion, body.results.length ? "" : "No similar products.", body));
}

for (const button of productPanel.querySelectorAll("button[data-event]")) {
  button.addEventListener("click", () => recordEvent(openProductId, button.dataset.event));
}

// Posts the event, then reloads the user's recommendations and events.
function recordEvent(productId, eventType) {
  const status = $("#product-status");
  const userId = currentUser();
  if (!userId) {
    status.textContent = "Enter a user id to record events.";
    return;
  }
  status.textContent = "";
  const posted = api("events", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: userId, product_id: productId, event_type: eventType,
      ...(openAttribution && { attribution: openAttribution }) }),
  });
  posted.then(() => { status.textContent = `Recorded ${eventType.replaceAll("_", " ")} by ${userId}.`; },
    (error) => { status.textContent = `Could not record the event: ${error.message}`; });
  loadUser(posted);
}

// ---- user --------------------------------------------------------------------------------------
const userForm = $("#user-form");
const userRegion = $("#user-results");
const userInput = $("#user-id");
const sliders = [...userForm.querySelectorAll("input[type=range]")];

function currentUser() {
  return userInput.checkValidity() ? userInput.value.trim() : "";
}

function recommendationQuery() {
  const strategy = $("#strategy").value;
  const params = new URLSearchParams({ strategy, limit: "10" });
  if (strategy === "hybrid") {
    params.set("weights", sliders.map((slider) => `${slider.dataset.source}:${slider.value}`).join(","));
  }
  return params;
}

// After `pending` (an event being posted) settles, shows the user's recommendations and recent events.
function loadUser(pending = Promise.resolve()) {
  const userId = currentUser();
  if (!userId) return;
  localStorage.setItem(USER_KEY, userId);
  const path = `users/${encodeURIComponent(userId)}`;
  const params = recommendationQuery();
  refresh(userRegion, async () => {
    await pending.catch(() => {});
    const profile = api(path).catch((error) => { if (error.status === 404) return null; throw error; });
    return Promise.all([api(`${path}/recommendations?${params}`), profile]);
  }, ([recommendations, profile]) => {
    const weights = Object.entries(recommendations.weights).map(([source, w]) => `${source} ${w.toFixed(2)}`);
    const coldStart = recommendations.cold_start ? "cold start: popular products until this user has events; " : "";
    showProducts(userRegion, `${recommendations.results.length} recommendations for ${userId} ` +
      `(${coldStart}strategy ${recommendations.strategy}; weights ${weights.join(", ")}` +
      `${experimentText(recommendations)})`, recommendations);
    showEvents(profile);
  });
}

function showEvents(profile) {
  const events = profile ? profile.recent_events : [];
  $("#event-summary").textContent = profile
    ? Object.entries(profile.counts).map(([type, count]) => `${type.replaceAll("_", " ")}: ${count}`).join(", ")
    : "No events yet.";
  $("#event-list").replaceChildren(...events.map((event) => {
    const name = knownProducts.get(event.product_id)?.name || event.product_id;
    const item = element("li", "event", `${event.event_type.replaceAll("_", " ")} · ${name} · `);
    item.dataset.productId = event.product_id;
    item.append(element("time", "", new Date(event.occurred_at * 1000).toLocaleString()));
    return item;
  }));
}

async function loadKnownUsers() {
  const users = await api("users?limit=20");
  $("#known-users").replaceChildren(...users.results.map(({ user_id }) => {
    const option = element("option");
    option.value = user_id;
    return option;
  }));
}

userForm.addEventListener("submit", (event) => {
  event.preventDefault();
  loadUser();
});
$("#strategy").addEventListener("change", () => {
  $("#weights").disabled = $("#strategy").value !== "hybrid";
  loadUser();
});
for (const slider of sliders) {
  slider.addEventListener("input", () => { slider.nextElementSibling.value = Number(slider.value).toFixed(2); });
  slider.addEventListener("change", () => loadUser());
}

// ---- experiments -------------------------------------------------------------------------------
const experimentForm = $("#experiment-form");
const experimentRegion = $("#experiment-results");

const interval = (ci) => `[${number(ci[0])}, ${number(ci[1])}]`;

function versusControl(test) {
  if (!test) return ["–", false];
  if (test.difference === null) return ["no impressions yet", false];
  const sign = test.difference > 0 ? "+" : "";
  return [`${sign}${number(test.difference)} ${interval(test.difference_ci)}, p = ${test.p_value.toPrecision(2)}`,
    test.p_value < 0.05];
}

function variantRow(variant) {
  const row = element("tr");
  row.dataset.variant = variant.name;
  const cells = [
    [variant.name], [Number(variant.share).toFixed(2)], [variant.impressions], [variant.clicks],
    [`${number(variant.ctr)} ${interval(variant.ctr_ci)}`], versusControl(variant.versus_control?.ctr),
    [variant.purchases], [`${number(variant.purchase_rate)} ${interval(variant.purchase_rate_ci)}`],
    versusControl(variant.versus_control?.purchase_rate),
  ];
  cells.forEach(([text, significant], column) => {
    const cell = element(column ? "td" : "th", significant ? "significant" : "", String(text));
    if (!column) cell.scope = "row";
    row.append(cell);
  });
  return row;
}

function showExperiment() {
  const id = $("#experiment").value;
  if (!id) return;
  refresh(experimentRegion, () => api(`experiments/${id}/results`), (body) => {
    $(".status", experimentRegion).textContent = `${body.name}: ${body.surface}, ${body.status}`;
    $("#variant-table tbody").replaceChildren(...body.variants.map(variantRow));
    $("#variant-table").hidden = false;
  });
}

async function loadExperiments() {
  const { experiments } = await api("experiments");
  $("#experiment").replaceChildren(...experiments.map((experiment) => {
    const option = element("option", "", `${experiment.name} (${experiment.surface}, ${experiment.status})`);
    option.value = experiment.experiment_id;
    return option;
  }));
  if (!experiments.length) $(".status", experimentRegion).textContent = "No experiments yet.";
  showExperiment();
}

experimentForm.addEventListener("submit", (event) => {
  event.preventDefault();
  showExperiment();
});
$("#experiment").addEventListener("change", showExperiment);

userInput.value = localStorage.getItem(USER_KEY) || `guest-${Math.random().toString(36).slice(2, 10)}`;
loadUser();
loadFacets().catch((error) => { $(".status", searchRegion).textContent = `Filters unavailable: ${error.message}`; });
loadKnownUsers().catch(() => {}); // the picker also takes any typed id
loadExperiments().catch((error) => { $(".status", experimentRegion).textContent = `Experiments unavailable: ${error.message}`; });
