# One image for every service; docker-compose picks the service with `llmops run NAME`.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LLMOPS_DATA_DIR=/data
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY shared shared
COPY services services
COPY infra infra
RUN pip install --no-cache-dir --no-deps .
VOLUME /data
ENTRYPOINT ["llmops"]
