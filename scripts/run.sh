#!/usr/bin/env bash
# `make run`: starts comfyfarm. Until the farm service lands this prints the command list.
set -euo pipefail
cd "$(dirname "$0")/.."
exec ./build/comfyfarm --help
