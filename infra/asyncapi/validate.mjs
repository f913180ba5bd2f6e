import { Parser } from '@asyncapi/parser';
import fs from 'node:fs';
const doc = fs.readFileSync(process.argv[2], 'utf8');
const parser = new Parser();
const { document, diagnostics } = await parser.parse(doc);
const errors = diagnostics.filter(d => d.severity === 0);
for (const d of diagnostics) console.log(JSON.stringify({severity: d.severity, code: d.code, message: d.message, path: d.path.join('/')}));
if (!document || errors.length) { process.exit(1); }
console.log(JSON.stringify({channels: document.channels().all().map(c => c.address()), operations: document.operations().all().length}));
