"""ferrite serve, driven by the official `ollama` and `openai` Python clients.

Run by cli/tests/e2e_server.rs: `python3 clients_e2e.py SECTION`, with OLLAMA_HOST set to
the server's URL and, for some sections, SMOLLM2_GGUF to the model file. Every check is an
assert with the values in its message; the exit status says pass or fail.
"""

import json
import os
import sys
import threading
import time

import ollama
import openai

HOST = os.environ["OLLAMA_HOST"]
client = ollama.Client(host=HOST)
# No retries: a 503 must reach the test, not be retried away.
oai = openai.OpenAI(base_url=HOST + "/v1", api_key="ollama", max_retries=0)

GREEDY = {"seed": 42, "temperature": 0, "num_predict": 8}
SMOL_SYSTEM = "You are a concise assistant."


def expect_error(fn, status, text=None):
    try:
        fn()
    except ollama.ResponseError as e:
        assert e.status_code == status, (e.status_code, e.error)
        if text is not None:
            assert e.error == text, repr(e.error)
        return e
    raise AssertionError(f"expected HTTP {status}, got success")


def section_models():
    """list, show, copy, delete and create through the ollama client."""
    models = {m.model: m for m in client.list().models}
    assert sorted(models) == ["gemma3:latest", "qwen2:latest", "smollm2:latest"], sorted(models)
    families = {n: m.details.family for n, m in models.items()}
    assert families == {"gemma3:latest": "gemma3", "qwen2:latest": "qwen2",
                        "smollm2:latest": "llama"}, families
    for name, m in models.items():
        assert m.size > 50_000_000 and len(m.digest) == 64, (name, m.size, m.digest)
        assert m.details.format == "gguf", (name, m.details)

    s = client.show("smollm2")
    assert "/blobs/sha256-" in s.modelfile, s.modelfile
    assert f"SYSTEM {SMOL_SYSTEM}" in s.modelfile, s.modelfile
    assert "PARAMETER num_predict 16" in s.modelfile, s.modelfile
    assert "num_predict" in s.parameters and "16" in s.parameters, s.parameters
    assert s.capabilities == ["completion"], s.capabilities
    # No TEMPLATE layer: the GGUF's own chat template is what the model renders with.
    assert "<|im_start|>" in s.template, s.template
    assert s.modelinfo["general.architecture"] == "llama", s.modelinfo
    assert s.modelinfo["llama.context_length"] > 0, s.modelinfo
    assert "tools" in client.show("qwen2").capabilities
    assert client.show("gemma3").modelinfo["general.architecture"] == "gemma3"
    expect_error(lambda: client.show("nope"), 404, "model 'nope' not found")

    assert client.copy("smollm2", "smol-copy").status == "success"
    assert "smol-copy:latest" in [m.model for m in client.list().models]
    assert client.show("smol-copy").modelfile.count("/blobs/sha256-") == 1
    assert client.delete("smol-copy").status == "success"
    assert "smol-copy:latest" not in [m.model for m in client.list().models]
    expect_error(lambda: client.show("smol-copy"), 404, "model 'smol-copy' not found")
    expect_error(lambda: client.delete("smol-copy"), 404, "model 'smol-copy' not found")
    expect_error(lambda: client.copy("nope", "x"), 404, 'model "nope" not found')

    # Create from an existing model, streaming and not.
    statuses = [p.status for p in client.create(model="smol-pirate", from_="smollm2",
                                                system="You are a pirate.",
                                                parameters={"temperature": 0.5}, stream=True)]
    assert statuses[-1] == "success" and "writing manifest" in statuses, statuses
    assert "SYSTEM You are a pirate." in client.show("smol-pirate").modelfile
    assert "PARAMETER temperature 0.5" in client.show("smol-pirate").modelfile
    r = client.create(model="smol-pirate", from_="smollm2", system="Arr.")
    assert r.status == "success", r
    assert "SYSTEM Arr." in client.show("smol-pirate").modelfile
    expect_error(lambda: client.create(model="bad name!", from_="smollm2"), 400,
                 "invalid model name")
    expect_error(lambda: client.create(model="x", from_="smollm2", template="{{ if }}"), 400)
    client.delete("smol-pirate")


def section_generate():
    """generate and chat (streaming and not), ps, load and unload."""
    r = client.generate("smollm2", "Why is the sky blue?", options=GREEDY)
    assert r.done and r.done_reason in ("stop", "length"), r
    assert r.response and 0 < r.eval_count <= 8 and r.prompt_eval_count > 0, r
    assert r.context and r.total_duration > 0, r
    chunks = list(client.generate("smollm2", "Why is the sky blue?", options=GREEDY, stream=True))
    assert chunks[-1].done and not any(c.done for c in chunks[:-1])
    assert "".join(c.response for c in chunks) == r.response, (chunks, r.response)

    msgs = [{"role": "user", "content": "Name a color."}]
    r = client.chat("smollm2", messages=msgs, options=GREEDY)
    assert r.message.role == "assistant" and r.message.content and r.done, r
    streamed = "".join(c.message.content for c in client.chat("smollm2", messages=msgs,
                                                                options=GREEDY, stream=True))
    assert streamed == r.message.content, (streamed, r.message.content)
    # A later turn: the history goes through the template too.
    msgs2 = msgs + [{"role": "assistant", "content": r.message.content},
                    {"role": "user", "content": "Another one?"}]
    r2 = client.chat("smollm2", messages=msgs2, options=GREEDY)
    assert r2.message.content and r2.prompt_eval_count > 0, r2

    # Every real model answers through its own template.
    for model in ["gemma3", "qwen2"]:
        r = client.chat(model, messages=msgs, options=GREEDY)
        assert r.message.content.strip(), (model, r)
        assert r.prompt_eval_count > 5, (model, r)

    running = {m.model: m for m in client.ps().models}
    assert {"smollm2:latest", "gemma3:latest", "qwen2:latest"} <= set(running), running
    smol = running["smollm2:latest"]
    assert smol.size > 0 and smol.context_length > 0 and smol.expires_at is not None, smol

    r = client.generate("smollm2", "")
    assert r.done and r.done_reason == "load", r
    r = client.generate("smollm2", "", keep_alive=0)
    assert r.done and r.done_reason == "unload", r
    r = client.chat("qwen2", messages=[], keep_alive=0)
    assert r.done and r.done_reason == "unload", r
    deadline = time.time() + 10
    while time.time() < deadline:
        running = [m.model for m in client.ps().models]
        if "smollm2:latest" not in running and "qwen2:latest" not in running:
            break
        time.sleep(0.1)
    assert running == ["gemma3:latest"], running

    expect_error(lambda: client.generate("nope", "hi"), 404, "model 'nope' not found")
    expect_error(lambda: client.chat("nope", messages=msgs), 404, "model 'nope' not found")
    expect_error(lambda: client.generate("bad name!", "hi"), 400, "invalid model name")


def section_openai():
    """/v1 chat completions (streaming and not) and models through the openai client."""
    ids = [m.id for m in oai.models.list().data]
    assert "smollm2:latest" in ids and "qwen2:latest" in ids, ids
    m = oai.models.retrieve("smollm2")
    assert m.id == "smollm2" and m.owned_by == "library", m

    msgs = [{"role": "user", "content": "Say something short."}]
    r = oai.chat.completions.create(model="smollm2", messages=msgs, seed=42, temperature=0,
                                    max_tokens=8)
    text = r.choices[0].message.content
    assert text and r.choices[0].finish_reason in ("stop", "length"), r
    assert r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 0, r.usage
    assert r.object == "chat.completion" and r.model == "smollm2", r

    parts, usage = [], None
    for chunk in oai.chat.completions.create(model="smollm2", messages=msgs, seed=42,
                                             temperature=0, max_tokens=8, stream=True,
                                             stream_options={"include_usage": True}):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            parts.append(c.delta.content or "")
    assert "".join(parts) == text, (parts, text)
    assert usage is not None and usage.completion_tokens == r.usage.completion_tokens, usage

    try:
        oai.chat.completions.create(model="nope", messages=msgs)
        raise AssertionError("expected a 404")
    except openai.NotFoundError as e:
        assert e.status_code == 404, e
        assert e.body["message"] == "model 'nope' not found", e.body


def section_format():
    """Structured outputs: format="json" and a JSON schema (ollama), response_format (openai)."""
    person = {"type": "object",
              "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    opts = {"seed": 42, "temperature": 0, "num_predict": 200}
    apple = 'Return a JSON object with keys "color" and "size" for an apple.'
    ada = "Tell me about a person called Ada who is 36, in JSON."

    def is_person(text):
        v = json.loads(text)
        assert list(v) == ["name", "age"], text
        assert isinstance(v["name"], str), text
        assert isinstance(v["age"], int) and not isinstance(v["age"], bool), text

    r = client.generate("smollm2", apple, format="json", options=opts)
    assert r.done_reason == "stop", r
    assert isinstance(json.loads(r.response), dict), r.response
    r = client.generate("smollm2", ada, format=person, options=opts)
    assert r.done_reason == "stop", r
    is_person(r.response)
    msgs = [{"role": "user", "content": ada}]
    r = client.chat("smollm2", messages=msgs, format=person, options=opts)
    assert r.done_reason == "stop", r
    is_person(r.message.content)
    streamed = "".join(c.message.content for c in client.chat(
        "smollm2", messages=msgs, format=person, options=opts, stream=True))
    assert streamed == r.message.content, (streamed, r.message.content)

    # Gemma 3's 262k SentencePiece vocabulary, greedy and sampled.
    for t in (0, 0.8):
        r = client.chat("gemma3", messages=msgs, format=person,
                        options={"seed": 1, "temperature": t, "num_predict": 100})
        assert r.done_reason == "stop", r
        is_person(r.message.content)

    r = oai.chat.completions.create(
        model="smollm2", messages=msgs, temperature=0, max_tokens=200,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "person", "strict": True, "schema": person}})
    assert r.choices[0].finish_reason == "stop", r
    is_person(r.choices[0].message.content)
    r = oai.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": apple}], temperature=0,
        max_tokens=200, response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict), r

    expect_error(lambda: client.generate("smollm2", "hi", format={"type": "object", "not": {}}),
                 400, 'invalid JSON schema in format: the keyword "not" is not supported')
    try:
        oai.chat.completions.create(
            model="smollm2", messages=msgs,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "x", "schema": {"type": "array",
                                                                     "uniqueItems": True}}})
        raise AssertionError("expected a 400")
    except openai.BadRequestError as e:
        assert e.body["message"] == "invalid JSON schema in format: uniqueItems is not supported", e.body


def create_smollm2():
    digest = client.create_blob(os.environ["SMOLLM2_GGUF"])
    r = client.create(model="smollm2", files={"smollm2.gguf": digest})
    assert r.status == "success", r


def section_parallel():
    """4 streaming chats at once (OLLAMA_NUM_PARALLEL=4) equal their serial results."""
    create_smollm2()
    prompts = ["Tell me about the sea.", "What is a prime number?", "Describe a cat.",
               "Why do birds sing?"]

    def run(i, out):
        opts = {"seed": 100 + i, "temperature": 0.9, "top_k": 50, "num_predict": 24}
        text, first = "", None
        for c in client.chat("smollm2", messages=[{"role": "user", "content": prompts[i]}],
                             options=opts, stream=True):
            first = first or time.monotonic()
            text += c.message.content
        out[i] = (text, first, time.monotonic())

    serial = {}
    for i in range(4):
        run(i, serial)
    assert all(t for t, _, _ in serial.values()), serial
    assert len({t for t, _, _ in serial.values()}) == 4, serial

    together = {}
    threads = [threading.Thread(target=run, args=(i, together)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert together[i][0] == serial[i][0], (i, together[i][0], serial[i][0])
    last_start = max(v[1] for v in together.values())
    first_end = min(v[2] for v in together.values())
    assert last_start < first_end, "the streams did not run at the same time"


def section_queue():
    """OLLAMA_NUM_PARALLEL=1, OLLAMA_MAX_QUEUE=1: a full queue answers 503, a client that
    hangs up mid-stream frees its slot."""
    create_smollm2()
    # Greedy: SmolLM2 then loops on this story for thousands of tokens. At temperature 1
    # it sometimes ended in under 2 s on a busy machine, and B then ran early.
    long_gen = client.generate("smollm2", "Write a very long story:", stream=True,
                               options={"num_predict": 100_000, "temperature": 0})
    assert next(long_gen).done is False
    waiting = {}

    def queued():
        waiting["r"] = client.generate("smollm2", "Hi", options={"num_predict": 2})
        waiting["t"] = time.monotonic()

    b = threading.Thread(target=queued)
    b.start()
    time.sleep(2)  # B is waiting for the only slot: the queue is full
    assert "r" not in waiting, "B should be waiting for the slot"
    busy = "server busy, please try again.  maximum pending requests exceeded"
    expect_error(lambda: client.generate("smollm2", "Hi"), 503, busy)
    try:
        oai.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "x"}])
        raise AssertionError("expected a 503")
    except openai.APIStatusError as e:
        assert e.status_code == 503, e
        assert e.body["message"] == busy, e.body
    # Hanging up mid-stream frees the slot: B runs at once instead of after ~4000 tokens.
    hung_up = time.monotonic()
    long_gen.close()
    b.join(timeout=60)
    assert "r" in waiting, "B never got the slot"
    assert waiting["r"].eval_count == 2, waiting["r"]
    assert waiting["t"] - hung_up < 20, waiting["t"] - hung_up


SECTIONS = {name[len("section_"):]: fn for name, fn in globals().items()
            if name.startswith("section_")}

if __name__ == "__main__":
    for name in sys.argv[1:]:
        SECTIONS[name]()
        print(f"ok {name}")
