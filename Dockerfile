# The driftline image of the compose stack (worker, demo producer, demo profile).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY driftline ./driftline
# The detectors' numba kernels compile here, once, into a cache the worker (nobody) can read.
ENV NUMBA_CACHE_DIR=/app/numba-cache
RUN pip install --no-cache-dir . && mkdir -p /data && chown nobody /data \
    && python -c 'from driftline.detectors.kernels import warm_up; warm_up()' \
    && chown -R nobody /app/numba-cache
USER nobody
VOLUME /data
ENTRYPOINT ["driftline"]
