#!/usr/bin/env bash
# Regenerates signaling/signaling_pb2.py and its type stub signaling/signaling_pb2.pyi from
# signaling/proto/signaling.proto.
#
# Dev-only tools, installed into the venv (not runtime dependencies):
#     .venv/bin/pip install grpcio-tools mypy-protobuf
# grpcio-tools provides protoc (python -m grpc_tools.protoc) for the module; mypy-protobuf
# provides protoc-gen-mypy for a stub that passes mypy --strict (protoc's own --pyi_out does
# not). The generated files are committed; ruff skips them (pyproject.toml extend-exclude)
# and mypy reads the .pyi.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_BIN="${VENV_BIN:-.venv/bin}"
# The proto sits in signaling/proto/ and the module is generated into signaling/, so protoc
# runs with signaling/proto as the include root and signaling/ as the output directory.
"$VENV_BIN/python" -m grpc_tools.protoc \
    --proto_path=signaling/proto \
    --plugin=protoc-gen-mypy="$VENV_BIN/protoc-gen-mypy" \
    --python_out=signaling \
    --mypy_out=signaling \
    signaling/proto/signaling.proto
# Check that the module loads with the installed protobuf runtime.
"$VENV_BIN/python" -c "import signaling.signaling_pb2"
echo "generated signaling/signaling_pb2.py and signaling/signaling_pb2.pyi"
