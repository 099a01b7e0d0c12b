// node run_onnx.js MODEL.onnx ROWS.f32 D OUT.f32
// ROWS.f32: raw features, float32 little-endian, row after row; OUT.f32: the probabilities.
const fs = require("fs");
const ort = require("onnxruntime-node");

async function main([modelPath, rowsPath, d, outPath]) {
  const bytes = fs.readFileSync(rowsPath);
  const x = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const D = Number(d), N = x.length / D;
  const session = await ort.InferenceSession.create(modelPath);
  const out = await session.run({ features: new ort.Tensor("float32", x, [N, D]) });
  const p = out.probabilities;
  fs.writeFileSync(outPath, Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength));
  console.log(`${modelPath}: probabilities [${p.dims}], logits [${out.logits.dims}]`);
}
main(process.argv.slice(2)).catch((e) => { console.error(e.message); process.exit(1); });
