# One image for every service; docker-compose picks the service with `llmops run NAME`.
# llama-cpp-python ships as source only: it is compiled in a builder stage, without OpenMP as
# in the Makefile (torch brings its own libgomp, and two OpenMP teams slow each other).
FROM python:3.11-slim AS llama-wheel
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
COPY requirements.lock .
RUN CMAKE_ARGS="-DGGML_OPENMP=OFF" pip wheel --no-cache-dir --no-deps -w /wheels \
    "llama-cpp-python==$(sed -n -E 's/^llama[-_]cpp[-_]python==//p' requirements.lock)"

FROM python:3.11-slim
# Tesseract and its English data: ingestion OCRs scans and PDF pages without a text layer.
RUN apt-get update && apt-get install -y --no-install-recommends tesseract-ocr \
    tesseract-ocr-eng && rm -rf /var/lib/apt/lists/*
ENV PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 LLMOPS_DATA_DIR=/data \
    INFERENCE_PROMPTS_DIR=/app/prompts
WORKDIR /app
COPY requirements.lock .
COPY --from=llama-wheel /wheels /wheels
RUN pip install --no-cache-dir --find-links /wheels --only-binary llama-cpp-python \
    -r requirements.lock && rm -rf /wheels
COPY pyproject.toml README.md ./
COPY shared shared
COPY services services
COPY infra infra
COPY prompts prompts
RUN pip install --no-cache-dir --no-deps . && LLMOPS_CACHE_DIR=/models llmops models fetch
ENV LLMOPS_CACHE_DIR=/models
VOLUME /data
ENTRYPOINT ["llmops"]
