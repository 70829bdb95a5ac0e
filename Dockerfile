FROM python:3.11-slim
WORKDIR /srv
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
COPY requirements.txt .
# The runtime only (requirements.txt; the tests' requirements-test.txt stays out of the image).
# The CPU build of torch first: the PyPI torch==2.13.0 is a multi-GB CUDA build.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -r requirements.txt
COPY app ./app
COPY seed ./seed
COPY ncf ./ncf
COPY gunicorn.conf.py .
EXPOSE 8000
CMD ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]
