#!/usr/bin/env bash
# Download, here, the wheels that benchmarks/gpu_check.sh installs on a lent GPU machine.
#
#     benchmarks/fetch_gpu_wheels.sh [DEST]          # DEST defaults to .whl (git-ignored)
#     MLFLOW=0 benchmarks/fetch_gpu_wheels.sh        # without the MLflow client stack
#
# The GPU machine (Python 3.12, x86_64, no network) already has torch, torchvision, timm,
# torchmetrics, numpy, scipy, opencv-python-headless, pillow, tifffile, tqdm, pyyaml, joblib,
# matplotlib, huggingface-hub, safetensors, packaging, protobuf, requests, click, anyio,
# cloudpickle, markupsafe, zipp (the image's package list: /work/.library/device/KINDS.md). What the
# benchmark imports beyond those is listed below with its dependencies, pinned to the versions
# of this project's .venv; each one's Requires-Dist was checked with
#     unzip -p DEST/NAME-*.whl '*/METADATA' | grep ^Requires-Dist
# Checked in a clean Python 3.12 venv holding only those image packages: with these wheels
# installed as gpu_check.sh does, Hydra composes conf/, albumentations imports and
# dedl_experiments.tracking.mlflow_store.Tracker writes to a new SQLite store.
# Total about 27 MB (the device tool carries 64 MiB at most, working tree included).
# A wheel already in DEST (any version) is kept: after changing a pin, delete DEST first
# (pip refuses two versions of one package in one install).
set -euo pipefail

DEST=${1:-.whl}
PY=${PYTHON:-python3}
mkdir -p "$DEST"

# The benchmark's own imports (dedl_experiments, benchmarks/): smp, Hydra, albumentations;
# the sweep benchmark's jobs: Hydra's joblib launcher.
CORE=(
  segmentation-models-pytorch==0.6.0   # needs huggingface-hub, timm, torchvision, ... (there)
  hydra-core==1.3.8                    # omegaconf, antlr4-python3-runtime 4.9.*, packaging
  omegaconf==2.3.1                     # antlr4-python3-runtime, PyYAML
  hydra-joblib-launcher==1.2.0         # the `gpus` launcher preset of the sweep benchmark; joblib (there)
  albumentations==2.0.8                # scipy, PyYAML, opencv (there), pydantic, albucore
  albucore==0.0.24                     # stringzilla, simsimd, opencv (there)
  stringzilla==5.3.2
  simsimd==6.5.16
  pydantic==2.14.4                     # annotated-types, pydantic-core, typing-extensions>=4.16, typing-inspection
  pydantic-core==2.50.5
  annotated-types==0.8.0
  typing-inspection==0.4.5
  typing-extensions==4.16.0            # the image's may be older than pydantic's minimum
)
# dedl_experiments.tracking (the MLflow logging time): the mlflow-skinny client with the
# SQLite store. The full `mlflow` wheel (server UI, 40+ MB installed) is not needed.
MLFLOW_SET=(
  mlflow-skinny==3.17.2
  mlflow-tracing==3.17.2
  sqlalchemy==2.1.9
  alembic==1.20.1
  mako==1.4.3
  sqlparse==0.6.1
  cachetools==7.3.3
  databricks-sdk==0.162.0
  google-auth==2.63.0                  # pyasn1-modules, cryptography
  pyasn1==0.6.5
  pyasn1-modules==0.4.2
  cryptography==50.0.2                 # also imported by mlflow's SQL store itself
  cffi==2.1.1
  pycparser==3.12
  fastapi==0.165.0
  starlette==1.10.0
  uvicorn==0.54.0
  gitpython==3.2.1
  gitdb==4.0.12
  smmap==5.0.3
  importlib-metadata==9.1.0
  opentelemetry-api==1.45.2
  opentelemetry-sdk==1.45.2
  opentelemetry-proto==1.45.2
  opentelemetry-semantic-conventions==0.66b2
  python-dotenv==1.2.4
)

PACKAGES=("${CORE[@]}")
if [ "${MLFLOW:-1}" != 0 ]; then
  PACKAGES+=("${MLFLOW_SET[@]}")
fi

have() {  # is a wheel of this distribution (any version) already in DEST?
  local name=${1%%==*}
  name=$(echo "$name" | tr '[:upper:]-.' '[:lower:]__')
  ls "$DEST" 2>/dev/null | tr '[:upper:]' '[:lower:]' | grep -q "^${name}-.*\.whl$"
}

for spec in "${PACKAGES[@]}"; do
  if have "$spec"; then
    continue
  fi
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d "$DEST" "$spec"
done

# antlr4-python3-runtime 4.9.3 (pinned 4.9.* by hydra-core and omegaconf) is published as a
# source archive only: build its pure-Python wheel here (py3-none-any, so it installs there).
if ! have antlr4-python3-runtime; then
  "$PY" -m pip wheel --quiet --no-deps --no-binary=:all: -w "$DEST" antlr4-python3-runtime==4.9.3
fi

echo "wheels in $DEST:"
ls -1 "$DEST"
du -sh "$DEST"
