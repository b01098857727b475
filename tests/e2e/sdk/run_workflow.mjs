// Runs one API-format workflow through @saintno/comfyui-sdk (ComfyApi + PromptBuilder +
// CallWrapper, as its README shows) against a ComfyUI-compatible server, then downloads every
// output image through /view and checks that it is a PNG. Prints a JSON summary; exit 0 on
// success, 1 on any failure.
//
//   node run_workflow.mjs http://127.0.0.1:8188 path/to/workflow.json OUTPUT_NODE_ID [MIN_PROGRESS]
//
// MIN_PROGRESS: the fewest `progress` events of the prompt the client must have received (sampler
// steps). They are counted on the ComfyApi from the start: CallWrapper.onProgress only listens
// after the prompt's first `executing` event and a /history round trip, so at a small
// --time-scale it misses the first steps (against ComfyUI as well); its count is reported too.
import { readFileSync } from "node:fs";
import { ComfyApi, CallWrapper, PromptBuilder } from "@saintno/comfyui-sdk";

const [, , baseUrl, workflowPath, outputNode, minProgressArg] = process.argv;
const minProgress = Number(minProgressArg ?? 0);
if (!baseUrl || !workflowPath || !outputNode) {
  console.error("usage: node run_workflow.mjs BASE_URL WORKFLOW.json OUTPUT_NODE_ID");
  process.exit(2);
}

const fail = (message) => {
  console.log(JSON.stringify({ ok: false, error: String(message) }));
  process.exit(1);
};
const deadline = setTimeout(() => fail("timed out after 60 s"), 60_000);

const workflow = JSON.parse(readFileSync(workflowPath, "utf8"));
const api = new ComfyApi(baseUrl, "comfyfarm-e2e-" + process.pid);
api.init(20, 250);
await api.waitForReady();

const builder = new PromptBuilder(workflow, [], ["images"]).setOutputNode("images", outputNode);
const events = { progress: 0, wrapperProgress: 0 };
const progressByPrompt = new Map();
api.on("progress", (ev) => {
  const id = ev.detail?.prompt_id;
  progressByPrompt.set(id, (progressByPrompt.get(id) ?? 0) + 1);
});
const result = await new Promise((resolve) => {
  new CallWrapper(api, builder)
    .onProgress(() => events.wrapperProgress++)
    .onFinished((data, promptId) => resolve({ data, promptId }))
    .onFailed((err) => fail(err?.message ?? err))
    .run();
});

const images = result.data?.images?.images ?? [];
if (images.length === 0) fail("the workflow finished without images: " + JSON.stringify(result.data));
const downloads = [];
for (const image of images) {
  const url = api.getPathImage(image);
  const response = await fetch(url);
  if (!response.ok) fail(`GET ${url}: HTTP ${response.status}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((b, i) => bytes[i] === b);
  if (!png) fail(`GET ${url}: not a PNG`);
  downloads.push({ url, bytes: bytes.length, contentType: response.headers.get("content-type") });
}
events.progress = progressByPrompt.get(result.promptId) ?? 0;
if (events.progress < minProgress) fail(`saw ${events.progress} progress events, expected at least ${minProgress}`);
clearTimeout(deadline);
console.log(JSON.stringify({ ok: true, promptId: result.promptId, images: downloads, events }));
api.destroy?.();
process.exit(0);
