# Outpost's image: every role (`outpost migrate`, `outpost ingest`, `outpost api`) from one build.
# Used by docker-compose.yml; the wheels of psycopg[binary], shapely and rtree bundle their C libraries,
# so the slim base needs no system packages.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY geo ./geo
COPY store ./store
COPY ingest ./ingest
COPY dispatch ./dispatch
COPY outpost ./outpost
COPY sim ./sim
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# A fixed unprivileged user; /var/lib/outpost/spool is created here so a fresh named volume inherits its owner.
RUN useradd --system --uid 10001 --home-dir /var/lib/outpost outpost \
    && mkdir -p /var/lib/outpost/spool && chown -R outpost /var/lib/outpost
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels outpost && rm -rf /wheels
USER outpost
WORKDIR /var/lib/outpost
ENTRYPOINT ["outpost"]
CMD ["--help"]
