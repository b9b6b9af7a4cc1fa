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

# Every dependency at the version and hash in requirements/lock.txt, as `make install` installs them
# (the dev tools included). The lock's torch is the CPU build, found on PyTorch's CPU page, which lists
# torch alone; PyPI's would be the multi-gigabyte CUDA build. (The lock holds the hash of the torch
# wheel `make lock` saw, this project's machines' copy; should PyTorch's file differ, pip refuses it.)
# Its own layer: the lock changes far less often than the code.
COPY requirements/lock.txt ./requirements/lock.txt
RUN pip install --require-hashes --find-links https://download.pytorch.org/whl/cpu/torch/ -r requirements/lock.txt

COPY pyproject.toml README.md ./
COPY audit ./audit
COPY training ./training
COPY migrations ./migrations
COPY app ./app
COPY .streamlit ./.streamlit
# auditloop alone, built with the locked setuptools; `pip check` fails the build if the lock is stale
RUN pip install --no-deps --no-build-isolation . && pip check

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
