# The driftline image of the compose stack (worker, demo producer, demo profile).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY driftline ./driftline
RUN pip install --no-cache-dir . && mkdir -p /data && chown nobody /data
USER nobody
VOLUME /data
ENTRYPOINT ["driftline"]
