#!/usr/bin/env bash
# Shared set-up for scripts/start and scripts/test: a virtualenv in .venv with dangan installed.
# Usage: source scripts/setup.sh [dev]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "dangan 需要 Python 3.11 或更高版本（当前：$("$PY" --version 2>&1)）" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> 创建虚拟环境 .venv"
  "$PY" -m venv .venv
fi
EXTRA="${1:-}"
STAMP=".venv/.dangan-installed${EXTRA:+-$EXTRA}"
HASH="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$HASH" ]; then
  echo "==> 安装依赖（pyproject.toml 中固定版本）"
  .venv/bin/python -m pip install -q --upgrade pip uv >/dev/null
  if [ -n "$EXTRA" ]; then
    .venv/bin/uv pip install -q --python .venv/bin/python -e ".[$EXTRA]"
  else
    .venv/bin/uv pip install -q --python .venv/bin/python -e .
  fi
  echo "$HASH" > "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
