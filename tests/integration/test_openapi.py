"""GET /openapi.json: generated from the views' declarations, it lists every API route with its inputs,
answers, errors and security."""
import schemathesis

PROTECTED = {("post", "/products"), ("delete", "/products/{product_id}"), ("post", "/train"), ("post", "/experiments"),
             ("post", "/experiments/{experiment_id}/stop")}


def test_every_api_route_is_documented_and_loads_in_schemathesis(app, client):
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.1")
    routes = {
        (method.lower(), rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules() if rule.endpoint.split(".")[0] not in ("ui", "static")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == {(method, path) for path, methods in document["paths"].items() for method in methods}
    operations = list(schemathesis.openapi.from_dict(document).get_all_operations())
    assert len(operations) == len(routes) and all(operation.ok() for operation in operations)


def test_parameters_bodies_errors_and_security(client):
    paths = client.get("/openapi.json").json["paths"]
    search = {parameter["name"]: parameter for parameter in paths["/search"]["get"]["parameters"]}
    assert search["q"]["required"] and search["q"]["schema"]["maxLength"] == 512
    assert search["limit"]["schema"] == {"default": 10, "maximum": 100, "minimum": 1, "type": "integer"}
    assert not search["category"]["required"] and "anyOf" not in search["category"]["schema"]
    product_id = paths["/products/{product_id}"]["get"]["parameters"][0]
    assert product_id["in"] == "path" and product_id["schema"]["pattern"] == "^[A-Za-z0-9_.:-]{1,64}$"
    assert {"200", "400", "404", "422", "503"} == set(paths["/products/{product_id}"]["get"]["responses"])
    upsert = paths["/products"]["post"]
    assert upsert["requestBody"]["required"]
    assert {"200", "400", "401", "403", "413", "415", "422", "503"} == set(upsert["responses"])
    assert not paths["/train"]["post"]["requestBody"]["required"]  # every hyper-parameter is optional
    assert set(paths["/train"]["post"]["responses"]) >= {"202", "409"}
    for path, methods in paths.items():
        for method, operation in methods.items():
            assert ("security" in operation) == ((method, path) in PROTECTED), (method, path)
            assert "503" in operation["responses"], (method, path)  # Milvus or the database unavailable
