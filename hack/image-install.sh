#!/bin/sh
# Install the operator and exactly its locked runtime dependencies (uv.lock, no dev group) into a fresh
# virtual environment VENV, from the project in the current directory.
#
# The Dockerfile's builder stage runs this script; tests/integration/chart/test_image_install.py runs the
# same script on a copy of the Docker build context, so the two cannot drift apart.
#
# usage: hack/image-install.sh VENV     (env: UV = the uv binary, PYTHON = the interpreter for the venv)
set -eu
venv=${1:?usage: hack/image-install.sh VENV}
uv=${UV:-uv}
python=${PYTHON:-python3}

# --frozen: install what uv.lock says, fail rather than re-resolve. --no-editable: the project itself is
# built into the venv, which then stands alone (the builder stage's copy of the source is not kept).
UV_PROJECT_ENVIRONMENT=$venv UV_PYTHON_DOWNLOADS=never "$uv" sync \
    --frozen --no-dev --no-editable --compile-bytecode --link-mode=copy --python "$python"
