// Print first-position logits for given token ids and the greedy continuation (argmax).
#include "llama.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include <string>
int main(int argc, char ** argv) {
    // usage: probe model n_predict id,id,id(prompt) id,id,...(logit ids)
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mp);
    int n_predict = atoi(argv[2]);
    std::vector<llama_token> prompt, ids;
    for (char * t = strtok(argv[3], ","); t; t = strtok(nullptr, ",")) prompt.push_back(atoi(t));
    for (char * t = strtok(argv[4], ","); t; t = strtok(nullptr, ",")) ids.push_back(atoi(t));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512; cp.n_threads = 2; cp.n_threads_batch = 2;
    llama_context * ctx = llama_init_from_model(model, cp);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);
    llama_batch b = llama_batch_get_one(prompt.data(), prompt.size());
    if (llama_decode(ctx, b)) { fprintf(stderr, "decode failed\n"); return 1; }
    float * l = llama_get_logits_ith(ctx, -1);
    printf("first:");
    for (auto id : ids) printf(" %d:%.6f", id, l[id]);
    printf("\ngreedy:");
    for (int i = 0; i < n_predict; i++) {
        int best = 0; for (int j = 1; j < n_vocab; j++) if (l[j] > l[best]) best = j;
        printf(" %d", best);
        if (llama_vocab_is_eog(vocab, best)) break;
        llama_token t = best;
        llama_batch bb = llama_batch_get_one(&t, 1);
        if (llama_decode(ctx, bb)) return 1;
        l = llama_get_logits_ith(ctx, -1);
    }
    printf("\n");
    return 0;
}
