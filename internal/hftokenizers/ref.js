// HuggingFace's own tokenizers (the npm package: the Rust library through
// its Node binding), as the reference for xling's tokenizer.
//   node ref.js MODULE_DIR encode TOKENIZER_JSON MAX_LEN [plain] < texts.json > ids.json
//     one array of ids per text, special tokens included unless "plain"
//     (add_special_tokens=False); MAX_LEN 0: the file's own truncation.
//   node ref.js MODULE_DIR bench TOKENIZER_JSON SECONDS < texts.json
//     texts/s encoding one text a call, then in batches of 256 (which
//     HuggingFace spreads over cores), each for SECONDS: {"single","batch"}.
//   node ref.js MODULE_DIR train KIND CORPUS OUT_JSON
//     trains with HuggingFace's default trainer for KIND (wordpiece, bpe,
//     unigram, wordlevel) and writes tokenizer.json.
const [moduleDir, mode, ...args] = process.argv.slice(2);
const hf = require(moduleDir);
const fs = require('fs');

async function encode(file, maxLen, plain) {
  const texts = JSON.parse(fs.readFileSync(0, 'utf8'));
  const tok = hf.Tokenizer.fromFile(file);
  if (Number(maxLen) > 0) tok.setTruncation(Number(maxLen));
  const opts = { addSpecialTokens: plain !== 'plain' };
  const out = [];
  for (let i = 0; i < texts.length; i += 512) {
    const encs = await tok.encodeBatch(texts.slice(i, i + 512), opts);
    for (const e of encs) out.push(e.getIds());
  }
  process.stdout.write(JSON.stringify(out));
}

async function bench(file, seconds) {
  const texts = JSON.parse(fs.readFileSync(0, 'utf8'));
  const tok = hf.Tokenizer.fromFile(file);
  const limit = Number(seconds) * 1000;
  const rate = async (step) => {
    let n = 0;
    const start = Date.now();
    while (Date.now() - start < limit) n += await step(n);
    return (n * 1000) / (Date.now() - start);
  };
  const single = await rate(async (n) => { await tok.encode(texts[n % texts.length]); return 1; });
  const batch = await rate(async (n) => {
    const at = n % texts.length;
    const chunk = texts.slice(at, at + 256);
    await tok.encodeBatch(chunk);
    return chunk.length;
  });
  process.stdout.write(JSON.stringify({ single, batch }));
}

function train(kind, corpus, out) {
  let tok;
  switch (kind) {
    case 'wordpiece':
      tok = new hf.Tokenizer(hf.WordPiece.empty());
      tok.setNormalizer(hf.bertNormalizer({ lowercase: false }));
      tok.setPreTokenizer(hf.bertPreTokenizer());
      break;
    case 'bpe':
      tok = new hf.Tokenizer(hf.BPE.empty());
      tok.setPreTokenizer(hf.byteLevelPreTokenizer());
      break;
    case 'unigram':
      tok = new hf.Tokenizer(hf.Unigram.empty());
      tok.setNormalizer(hf.nfkcNormalizer());
      tok.setPreTokenizer(hf.metaspacePreTokenizer());
      break;
    case 'wordlevel':
      tok = new hf.Tokenizer(hf.WordLevel.empty());
      tok.setPreTokenizer(hf.whitespacePreTokenizer());
      break;
    default:
      throw new Error('unknown kind ' + kind);
  }
  tok.train([corpus]);
  tok.save(out);
}

(async () => {
  if (mode === 'encode') await encode(...args);
  else if (mode === 'bench') await bench(...args);
  else if (mode === 'train') train(...args);
  else throw new Error('unknown mode ' + mode);
})().catch((e) => { console.error(String((e && e.stack) || e)); process.exit(1); });
