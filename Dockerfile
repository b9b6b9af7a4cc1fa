# auditloop: the Streamlit app (and the `auditloop` CLI) on CPU.
#   docker build -t auditloop .
#   docker run -p 8501:8501 -v auditloop-data:/data auditloop
# The database defaults to SQLite in /data; set AUDITLOOP_DATABASE_URL for PostgreSQL. Behind a proxy,
# add its host name: docker run ... auditloop sh -c '... --server.allowedHosts=audit.example.com'.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/auditloop

# The CPU build of PyTorch first, from its own index, so that installing the package does not pull
# the multi-gigabyte CUDA build. Its own layer: it changes far less often than the code.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml README.md ./
COPY audit ./audit
COPY training ./training
COPY migrations ./migrations
COPY app ./app
COPY .streamlit ./.streamlit
RUN pip install .

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin auditloop \
    && mkdir -p /data \
    && chown auditloop:auditloop /data
USER auditloop

ENV AUDITLOOP_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 8501

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://localhost:8501/_stcore/health', timeout=4).status == 200 else 1)"]

# Migrations first (idempotent), then the app; exec so that streamlit receives the stop signal.
CMD ["sh", "-c", "auditloop db upgrade && exec streamlit run app/streamlit_app.py --server.port=8501 --server.address=0.0.0.0"]
