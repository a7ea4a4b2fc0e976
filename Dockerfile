# One image for the rayproc service and its Ray workers: the head runs Ray, then the API (`rayproc serve
# --ray-address auto`, or `serve deploy deploy/serve.yaml`); workers run Ray only. Build from the repository:
#     docker build -t rayproc:0.1.0 .
# The install steps are the README's (a venv, then `pip install -e .`), with Ray's own image as the base so
# the Python and system libraries match what KubeRay expects (deploy/kuberay-rayservice.yaml).
FROM rayproject/ray:2.60.0-py311

USER root
# libgl and glib are what opencv-python-headless needs at import on a slim image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/rayproc
COPY --chown=ray:users . /opt/rayproc
RUN mkdir -p /mnt/data && chown ray:users /mnt/data /opt/rayproc
USER ray

# The README's steps. The venv is put first on PATH, so `ray`, `serve` and `rayproc` are its commands on
# every node and the job drivers' interpreter (sys.executable) is the one rayproc was installed into.
RUN python3 -m venv /opt/rayproc/.venv && /opt/rayproc/.venv/bin/pip install -e .
ENV PATH=/opt/rayproc/.venv/bin:$PATH \
    RAYPROC_DATA_DIR=/mnt/data/rayproc \
    RAYPROC_ALLOWED_ROOTS=/mnt/data

# 8000 the API (Serve), 8265 the dashboard and Jobs API, 6379 the GCS, 8080 Ray's metrics export.
EXPOSE 8000 8265 6379 8080
CMD ["rayproc", "--help"]
