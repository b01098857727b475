// Runs several prompts at once through @saintno/comfyui-sdk's ComfyPool (two ComfyApi clients
// with their own client ids, both on the same ComfyUI-compatible URL: the farm), then downloads
// every output image through /view and checks that it is a PNG. Prints a JSON summary; exit 0 on
// success, 1 on any failure.
//
//   node run_pool.mjs http://127.0.0.1:8288 path/to/workflows [BLUR_JOBS] [TXT2IMG_JOBS]
//
// The jobs are model_free_blur.json with a different colour/radius each, and txt2img_sd15.json
// with a different seed each (defaults: 4 and 2). Every job must finish with its own prompt id
// and at least one image; txt2img jobs must also report their 20 sampler steps, to the client
// that submitted them and to no other. The progress events are counted on each ComfyApi from the
// start: CallWrapper only listens for them after the prompt's first `executing` event and a
// /history round trip, so at a small --time-scale it misses some, against ComfyUI as well.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ComfyApi, CallWrapper, ComfyPool, EQueueMode, PromptBuilder } from "@saintno/comfyui-sdk";

const [, , baseUrl, workflowDir, blurArg, txtArg] = process.argv;
if (!baseUrl || !workflowDir) {
  console.error("usage: node run_pool.mjs BASE_URL WORKFLOW_DIR [BLUR_JOBS] [TXT2IMG_JOBS]");
  process.exit(2);
}
const blurJobs = Number(blurArg ?? 4);
const txtJobs = Number(txtArg ?? 2);

let pool;
const fail = (message) => {
  console.log(JSON.stringify({ ok: false, error: String(message) }));
  process.exit(1);
};
const deadline = setTimeout(() => fail("timed out after 90 s"), 90_000);

const blur = JSON.parse(readFileSync(join(workflowDir, "model_free_blur.json"), "utf8"));
const txt2img = JSON.parse(readFileSync(join(workflowDir, "txt2img_sd15.json"), "utf8"));

// One description per job: which workflow, which inputs differ, which node saves the images.
const jobs = [];
for (let i = 0; i < blurJobs; i++) {
  const builder = new PromptBuilder(blur, ["color", "radius", "prefix"], ["images"])
    .setInputNode("color", "1.inputs.color")
    .setInputNode("radius", "2.inputs.blur_radius")
    .setInputNode("prefix", "4.inputs.filename_prefix")
    .setOutputNode("images", "4")
    .input("color", (0x102030 * (i + 1)) & 0xffffff)
    .input("radius", 1 + (i % 5))
    .input("prefix", `pool_blur_${i}`);
  jobs.push({ name: `blur#${i}`, builder, minProgress: 0 });
}
for (let i = 0; i < txtJobs; i++) {
  const builder = new PromptBuilder(txt2img, ["seed", "prefix"], ["images"])
    .setInputNode("seed", "3.inputs.seed")
    .setInputNode("prefix", "9.inputs.filename_prefix")
    .setOutputNode("images", "9")
    .input("seed", 1000 + i)
    .input("prefix", `pool_txt2img_${i}`);
  jobs.push({ name: `txt2img#${i}`, builder, minProgress: 20 });
}

const clients = [0, 1].map((i) => new ComfyApi(baseUrl, `comfyfarm-e2e-pool-${process.pid}-${i}`));
// PICK_ROUTINE hands jobs to the clients in turn without waiting for an idle one (PICK_ZERO
// waits for queue_remaining == 0, which on a farm is the whole farm's queue: no concurrency).
pool = new ComfyPool(clients, EQueueMode.PICK_ROUTINE);
pool.on("connection_error", (ev) => fail(`client ${ev.detail.clientIdx}: connection error`));

// Jobs claimed before any client is online would break PICK_ROUTINE's round robin (it divides by
// the number of online clients): wait until both have had their first `status` message.
await new Promise((resolve) => {
  const online = new Set();
  pool.on("connected", (ev) => {
    online.add(ev.detail.clientIdx);
    if (online.size === clients.length) resolve();
  });
});

// progress[clientIdx][prompt_id]: `progress` events each client received.
const progress = clients.map(() => new Map());
clients.forEach((api, idx) => {
  api.on("progress", (ev) => {
    const id = ev.detail?.prompt_id;
    progress[idx].set(id, (progress[idx].get(id) ?? 0) + 1);
  });
});

let inFlight = 0;
let maxInFlight = 0;
const runOne = (job) => async (api, clientIdx) => {
  inFlight++;
  maxInFlight = Math.max(maxInFlight, inFlight);
  try {
    const { data, promptId } = await new Promise((resolve, reject) => {
      new CallWrapper(api, job.builder)
        .onFinished((data, promptId) => resolve({ data, promptId }))
        .onFailed((err) => reject(new Error(`${job.name}: ${err?.message ?? err} ${JSON.stringify(err?.cause ?? "")}`)))
        .run();
    });
    return { name: job.name, clientIdx, promptId, images: data?.images?.images ?? [], minProgress: job.minProgress };
  } finally {
    inFlight--;
  }
};

let results;
try {
  results = await pool.batch(jobs.map(runOne));
} catch (err) {
  fail(err?.message ?? err);
}

const summary = [];
const ids = new Set();
const backends = new Set();
for (const r of results) {
  if (ids.has(r.promptId)) fail(`${r.name}: prompt id ${r.promptId} reported twice`);
  ids.add(r.promptId);
  if (r.images.length === 0) fail(`${r.name}: finished without images`);
  const seen = progress[r.clientIdx].get(r.promptId) ?? 0;
  if (seen < r.minProgress) fail(`${r.name}: saw ${seen} progress events, expected at least ${r.minProgress}`);
  progress.forEach((m, idx) => {
    if (idx !== r.clientIdx && m.has(r.promptId)) fail(`${r.name}: client ${idx} got progress events of a prompt it did not submit`);
  });
  const api = clients[r.clientIdx];
  const history = await api.getHistory(r.promptId);
  if (!history?.status?.completed) fail(`${r.name}: /history/${r.promptId} is not completed: ${JSON.stringify(history?.status)}`);
  for (const image of r.images) {
    const url = api.getPathImage(image);
    const response = await fetch(url);
    if (!response.ok) fail(`${r.name}: GET ${url}: HTTP ${response.status}`);
    const bytes = new Uint8Array(await response.arrayBuffer());
    const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((b, i) => bytes[i] === b);
    if (!png) fail(`${r.name}: GET ${url}: not a PNG`);
    if (!image.filename.startsWith(r.name.startsWith("blur") ? "pool_blur_" : "pool_txt2img_")) {
      fail(`${r.name}: unexpected output ${image.filename}`);
    }
    backends.add(String(image.subfolder ?? "").split("/")[0]);
  }
  summary.push({ job: r.name, client: r.clientIdx, promptId: r.promptId, images: r.images.length, progress: seen });
}
const usedClients = new Set(results.map((r) => r.clientIdx));
if (usedClients.size !== clients.length) fail(`the pool used ${usedClients.size} of ${clients.length} clients`);
if (maxInFlight < 2) fail(`the pool never ran two jobs at once (max in flight ${maxInFlight})`);

clearTimeout(deadline);
console.log(JSON.stringify({ ok: true, jobs: summary, maxInFlight, backends: [...backends].sort() }));
pool.destroy();
process.exit(0);
