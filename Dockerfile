# tagserver: production image. Build: docker build -t tagserver .  Run: see README.md
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY tagserver ./tagserver
RUN pip install . && useradd --create-home --uid 10001 tagserver \
    && mkdir -p /var/lib/tagserver && chown tagserver /var/lib/tagserver
COPY tags ./tags
# the SQLite outbox: keep it on a volume so that a new container resumes undelivered events
ENV TAGSERVER_OUTBOX=/var/lib/tagserver/outbox.sqlite3
VOLUME /var/lib/tagserver
USER tagserver
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthy')"
CMD ["tagserver", "serve", "--host", "0.0.0.0", "--port", "8080", "--tags", "/app/tags"]
