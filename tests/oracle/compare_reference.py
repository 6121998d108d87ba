"""llama.cpp built on this machine vs shared/reference: first-position top-5 logit
differences and how many greedy tokens agree (see README.md)."""
import json,os,subprocess,sys
REF=os.path.join(os.path.dirname(os.path.abspath(__file__)),'../../../shared/reference')
MODELS=os.environ.get('FERRITE_MODELS_DIR') or os.path.expanduser('~/.cache/ferrite-models')
M={'smollm2':('SmolLM2-135M-Instruct.Q4_1.gguf','smollm2-135m-q4_1.json'),'gemma3':('gemma-3-270m-q4_k_m.gguf','gemma3-270m-q4_k_m.json'),'qwen2':('qwen2.5-coder-0.5b-instruct-q4_k_m.gguf','qwen2.5-coder-0.5b-q4_k_m.json')}
for name,(f,r) in M.items():
    ref=json.load(open(os.path.join(REF,r)))
    for e in ref['entries']:
        if 'greedy_ids' not in e: continue
        p=','.join(map(str,e['prompt_token_ids_add_special']))
        ids=','.join(str(a) for a,_ in e['first_position_top5_logits'])
        out=subprocess.run([os.environ.get('LLAMA_PROBE','/tmp/lcprobe/probe'),os.path.join(MODELS,f),'32',p,ids],capture_output=True,text=True).stdout
        first=[float(x.split(':')[1]) for x in out.split('\n')[0].split()[1:]]
        greedy=[int(x) for x in out.split('\n')[1].split()[1:]]
        diffs=[f'{a-b:+.4f}' for a,(_,b) in zip(first,e['first_position_top5_logits'])]
        m=0
        for a,b in zip(greedy,e['greedy_ids']):
            if a!=b: break
            m+=1
        print(f"{name:8} {e['prompt'][:28]!r:32} llama.cpp-here vs ref: top5 diff [{' '.join(diffs)}] greedy {m}/{len(e['greedy_ids'])}")
