// Loads a GGUF with llama.cpp (node-llama-cpp's prebuilt CPU binary), evaluates the token ids
// of each prompt in `fedlora logprobs --json` output, and compares llama.cpp's next-token
// log-probabilities with fedlora's for every position and every token fedlora listed.
//
//   node llamacpp_logprobs.mjs --nlc DIR --model M.gguf [--lora L.gguf] --ref REF.json
//        --label NAME --max-abs X --mean-abs Y [--kv F32|F16]
//
// Prints one JSON line {label, positions, compared, max_abs, mean_abs, top1_agree,
// tokenizer_agree}; exit status 1 when a tolerance is exceeded, llama.cpp's tokenization of a
// prompt differs from fedlora's, or the model's BOS differs.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function args(argv) {
  const a = {};
  for (let i = 2; i < argv.length; i += 2) a[argv[i].replace(/^--/, "")] = argv[i + 1];
  for (const k of ["nlc", "model", "ref", "label", "max-abs", "mean-abs"]) {
    if (a[k] === undefined) throw new Error(`missing --${k}`);
  }
  return a;
}

const a = args(process.argv);
const entry = path.join(a.nlc, "node_modules", "node-llama-cpp", "dist", "index.js");
if (!fs.existsSync(entry)) {
  console.error(`node-llama-cpp is not installed in ${a.nlc} (run scripts/setup_llamacpp.sh)`);
  process.exit(2);
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
const ref = JSON.parse(fs.readFileSync(a.ref, "utf8"));

const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: a.model, gpuLayers: 0 });
const maxLen = Math.max(...ref.prompts.map((p) => p.ids.length));
const context = await model.createContext({
  contextSize: Math.max(64, maxLen + 8),
  batchSize: Math.max(64, maxLen + 8),
  threads: 2,
  // llama.cpp keeps K/V in F16 by default (~4e-3 nats here); F32 isolates the export.
  experimentalKvCacheKeyType: a.kv ?? "F32",
  experimentalKvCacheValueType: a.kv ?? "F32",
  flashAttention: false,
  ...(a.lora ? { lora: { adapters: [{ filePath: a.lora, scale: 1 }] } } : {}),
});
const seq = context.getSequence();

let compared = 0, sum = 0, max = 0, positions = 0, top1 = 0, tokOk = true;
const problems = [];
if (model.tokens.bos !== ref.prompts[0].ids[0]) {
  problems.push(`llama.cpp BOS is ${model.tokens.bos}, fedlora's is ${ref.prompts[0].ids[0]}`);
}
for (const p of ref.prompts) {
  const mine = Array.from(model.tokenize(p.text));
  if (JSON.stringify(mine) !== JSON.stringify(p.ids.slice(1))) {
    tokOk = false;
    problems.push(`tokenization of "${p.text}" differs: llama.cpp ${JSON.stringify(mine)} ` +
                  `fedlora ${JSON.stringify(p.ids.slice(1))}`);
  }
  await seq.clearHistory();
  const out = await seq.controlledEvaluate(
      p.ids.map((id) => [id, { generateNext: { probabilities: true } }]));
  for (let i = 0; i < p.ids.length; ++i) {
    const probs = out[i]?.next?.probabilities;
    if (!probs) throw new Error(`no probabilities at position ${i} of "${p.text}"`);
    let best = -1, bestP = -1;
    for (const [tok, pr] of probs) if (pr > bestP) { best = tok; bestP = pr; }
    if (best === p.top[i][0][0]) top1 += 1;
    for (const [tok, lp] of p.top[i]) {
      const d = Math.abs(Math.log(probs.get(tok) ?? 0) - lp);
      sum += d;
      max = Math.max(max, d);
      compared += 1;
    }
    positions += 1;
  }
}
const res = {
  label: a.label, kv_cache: a.kv ?? "F32", positions, compared, max_abs: max, mean_abs: sum / compared,
  top1_agree: top1 / positions, tokenizer_agree: tokOk,
  tol_max_abs: Number(a["max-abs"]), tol_mean_abs: Number(a["mean-abs"]),
};
console.log(JSON.stringify(res));
if (!(max <= res.tol_max_abs)) problems.push(`max |dlogprob| ${max} > ${res.tol_max_abs}`);
if (!(res.mean_abs <= res.tol_mean_abs)) {
  problems.push(`mean |dlogprob| ${res.mean_abs} > ${res.tol_mean_abs}`);
}
await context.dispose();
await model.dispose();
await llama.dispose();
if (problems.length) {
  for (const m of problems) console.error(`${a.label}: ${m}`);
  process.exit(1);
}
