// Validates the KEDA and Prometheus-operator documents of rendered manifests against their CRD
// schemas (scripts/check-k8s.sh):
//
//   node scripts/k8s/validate_crds.mjs FILE.yaml...
//
// Models: @kubernetes-models/keda and @kubernetes-models/prometheus-operator (pinned in
// scripts/k8s/package-lock.json), resolved from $ARGUS_K8S_NODE (default
// ~/.cache/argus/k8s-tools/node, installed by scripts/setup-k8s-tools.sh). Their validate()
// checks types, enums and required fields but lets unknown fields through, so this script also
// walks each document along the models' TypeScript declarations and rejects any field they do not
// declare (a misspelt `excludeUnacknowledged` would otherwise pass, and KEDA would ignore it).
// A document of any other kind of these API groups is an error: nothing here could check it.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const prefix = process.env.ARGUS_K8S_NODE ||
  path.join(process.env.ARGUS_HOME || path.join(os.homedir(), '.cache/argus'), 'k8s-tools/node');
const modules = path.join(prefix, 'node_modules');
const load = (p) => import(pathToFileURL(path.join(modules, p)).href);
const yaml = (await load('js-yaml/dist/js-yaml.mjs')).default;

const KINDS = {
  'keda.sh/v1alpha1': ['@kubernetes-models/keda/keda.sh/v1alpha1', ['ScaledObject', 'TriggerAuthentication', 'ScaledJob']],
  'monitoring.coreos.com/v1': ['@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1',
    ['ServiceMonitor', 'PodMonitor', 'PrometheusRule']],
};

// --- TypeScript declarations -> the fields each interface declares -----------------------------
const files = new Map();

function declarationFile(spec, from) {
  let p = spec.startsWith('.') ? path.resolve(path.dirname(from), spec) : path.join(modules, spec);
  p = p.replace(/\.js$/, '');
  return `${p}.d.ts`;
}

function splitTop(body, sep) {
  const parts = []; let depth = 0; let cur = '';
  for (const ch of body) {
    if ('{<(['.includes(ch)) depth++;
    if ('}>)]'.includes(ch)) depth--;
    if (ch === sep && depth === 0) { parts.push(cur); cur = ''; } else cur += ch;
  }
  if (cur.trim()) parts.push(cur);
  return parts;
}

function parseFile(file) {
  if (files.has(file)) return files.get(file);
  const info = { imports: {}, aliases: {}, interfaces: {} };
  files.set(file, info);
  if (!fs.existsSync(file)) return info;
  const src = fs.readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const m of src.matchAll(/import\s*\{([^}]*)\}\s*from\s*"([^"]+)"/g)) {
    for (const name of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
      info.imports[name] = declarationFile(m[2], file);
    }
  }
  for (const m of src.matchAll(/export type \{([^}]*)\}/g)) {
    for (const pair of m[1].split(',')) {
      const [local, alias] = pair.split(' as ').map((s) => s.trim());
      if (alias) info.aliases[alias] = local;
    }
  }
  const re = /export interface (\w+)(?:\s+extends\s+([^{]+))?\s*\{/g;
  let m;
  while ((m = re.exec(src))) {
    let depth = 1; let i = re.lastIndex;
    for (; i < src.length && depth; i++) {
      if (src[i] === '{') depth++;
      if (src[i] === '}') depth--;
    }
    const body = src.slice(re.lastIndex, i - 1);
    const fields = {};
    for (const member of splitTop(body, ';')) {
      const f = member.trim().match(/^"?([\w$-]+)"?\??\s*:\s*([\s\S]+)$/);
      if (f) fields[f[1]] = f[2].trim();
    }
    info.interfaces[m[1]] = { fields, extends: m[2] ? splitTop(m[2], ',').map((s) => s.trim()) : [] };
  }
  return info;
}

// The interface `name` as seen from `file`: {fields, file, open}; null when not an interface.
function resolve(name, file) {
  const info = parseFile(file);
  const local = info.aliases[name] || name;
  let iface = info.interfaces[local];
  let where = file;
  if (!iface && info.imports[name]) {
    where = info.imports[name];
    const target = parseFile(where);
    iface = target.interfaces[target.aliases[name] || name];
  }
  if (!iface) return null;
  const fields = { ...iface.fields };
  let open = false;
  for (const ext of iface.extends) {
    if (ext === 'TypeMeta') { Object.assign(fields, { apiVersion: 'string', kind: 'string' }); continue; }
    const parent = resolve(ext, where);
    if (!parent) { open = true; continue; }
    Object.assign(fields, parent.fields);
    open ||= parent.open;
  }
  return { fields, file: where, open };
}

// Walks value along type (a TypeScript type expression in file); returns error strings.
function walk(value, type, file, at) {
  type = type.trim();
  if (value === null || value === undefined) return [];
  const arr = type.match(/^Array<([\s\S]+)>$/);
  if (arr) return Array.isArray(value) ? value.flatMap((v, i) => walk(v, arr[1], file, `${at}[${i}]`)) : [];
  const map = type.match(/^\{\s*\[key: string\]:\s*([\s\S]+?);?\s*\}$/);
  if (map) {
    return typeof value === 'object' ? Object.entries(value).flatMap(([k, v]) => walk(v, map[1], file, `${at}.${k}`)) : [];
  }
  if (!/^\w+$/.test(type) || typeof value !== 'object' || Array.isArray(value)) return [];
  const iface = resolve(type, file);
  if (!iface) return [];
  const errors = [];
  for (const [k, v] of Object.entries(value)) {
    if (!(k in iface.fields)) {
      if (!iface.open) errors.push(`${at}.${k}: unknown field (known: ${Object.keys(iface.fields).join(', ')})`);
      continue;
    }
    errors.push(...walk(v, iface.fields[k], iface.file, `${at}.${k}`));
  }
  return errors;
}

// A trigger's metadata is a free string map in the CRD: check the scaler's own parameters
// (KEDA 2.17 docs, "RabbitMQ Queue").
const TRIGGER_METADATA = {
  rabbitmq: {
    host: null, hostFromEnv: null, usernameFromEnv: null, passwordFromEnv: null, queueName: null,
    vhostName: null, queueLength: null, value: /^\d+(\.\d+)?$/, activationValue: /^\d+(\.\d+)?$/,
    protocol: /^(auto|http|amqp)$/, mode: /^(QueueLength|MessageRate)$/, useRegex: /^(true|false)$/,
    pageSize: /^\d+$/, operation: /^(sum|max|avg)$/, timeout: /^\d+$/,
    excludeUnacknowledged: /^(true|false)$/, unsafeSsl: /^(true|false)$/,
  },
};

function triggerErrors(doc) {
  if (doc.kind !== 'ScaledObject') return [];
  return (doc.spec?.triggers || []).flatMap((t, i) => {
    const known = TRIGGER_METADATA[t.type];
    if (!known) return [`spec.triggers[${i}]: no parameter list for trigger type ${t.type}`];
    return Object.entries(t.metadata || {}).flatMap(([k, v]) => {
      if (!(k in known)) return [`spec.triggers[${i}].metadata.${k}: not a ${t.type} parameter`];
      if (known[k] && !known[k].test(String(v))) return [`spec.triggers[${i}].metadata.${k}: bad value ${v}`];
      return [];
    });
  });
}

// --- the documents ------------------------------------------------------------------------------
let checked = 0; const errors = [];
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(fs.readFileSync(file, 'utf8'))) {
    if (!doc || !KINDS[doc.apiVersion]) continue;
    const name = `${path.basename(file)}: ${doc.kind}/${doc.metadata?.name}`;
    const [dir, kinds] = KINDS[doc.apiVersion];
    if (!kinds.includes(doc.kind)) { errors.push(`${name}: no schema for ${doc.apiVersion} ${doc.kind}`); continue; }
    const Model = (await load(`${dir}/${doc.kind}.js`))[doc.kind];
    try {
      new Model(doc).validate();
    } catch (e) {
      errors.push(`${name}: ${e.message}`);
    }
    const decl = path.join(modules, dir, `${doc.kind}.d.ts`);
    errors.push(...walk(doc, `I${doc.kind}`, decl, doc.kind).map((e) => `${name}: ${e}`));
    errors.push(...triggerErrors(doc).map((e) => `${name}: ${e}`));
    checked++;
  }
}
if (errors.length) {
  console.error(`validate_crds: ${errors.length} error(s):`);
  for (const e of errors) console.error(`  - ${e}`);
  process.exit(1);
}
console.log(`validate_crds: ${checked} KEDA / Prometheus-operator documents valid (CRD schemas, unknown fields refused)`);
