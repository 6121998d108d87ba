// Dump every f32 tensor of the first llama_decode (the prompt) to DIR/NNNN.bin, one line per
// tensor (number, name, op, shape) in DIR/index.txt. Usage: llama_dump MODEL DIR ID,ID,...
#include "llama.h"
#include "ggml.h"
#include "ggml-backend.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <string>
static const char * g_dir; static int g_n = 0; static bool g_on = true; static FILE * g_idx;
static bool cb(struct ggml_tensor * t, bool ask, void *) {
    if (ask) return g_on;
    if (!g_on) return true;
    if (t->type != GGML_TYPE_F32 || !ggml_is_contiguous(t)) return true;
    std::vector<float> buf(ggml_nelements(t));
    ggml_backend_tensor_get(t, buf.data(), 0, ggml_nbytes(t));
    char path[512]; snprintf(path, sizeof path, "%s/%04d.bin", g_dir, g_n);
    FILE * f = fopen(path, "wb"); fwrite(buf.data(), 4, buf.size(), f); fclose(f);
    fprintf(g_idx, "%04d %s %s %lld %lld %lld %lld\n", g_n, t->name, ggml_op_desc(t), (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
    g_n++;
    return true;
}
int main(int argc, char ** argv) {
    // usage: dump model dir id,id,id
    g_dir = argv[2];
    char ip[512]; snprintf(ip, sizeof ip, "%s/index.txt", g_dir); g_idx = fopen(ip, "w");
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    std::vector<llama_token> prompt;
    for (char * t = strtok(argv[3], ","); t; t = strtok(nullptr, ",")) prompt.push_back(atoi(t));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512; cp.n_threads = 2; cp.n_threads_batch = 2;
    cp.cb_eval = cb; cp.cb_eval_user_data = nullptr;
    llama_context * ctx = llama_init_from_model(model, cp);
    llama_batch b = llama_batch_get_one(prompt.data(), prompt.size());
    if (llama_decode(ctx, b)) { fprintf(stderr, "decode failed\n"); return 1; }
    fclose(g_idx);
    return 0;
}
