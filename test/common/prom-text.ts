/**
 * Parses Prometheus text exposition with the Prometheus project's own Python client parser
 * (prometheus_client.parser.text_string_to_metric_families, Debian package
 * python3-prometheus-client), so tests check /metrics against a real, maintained parser and
 * not against one written here. It raises on any line that is not valid text format.
 *
 * Why not an npm parser: parse-prometheus-text-format (the usual one, last released 2019)
 * folds every labelled histogram into one label-less sample and drops its _count and _sum,
 * and every grid sample carries role and node_id labels.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

export const PYTHON = '/usr/bin/python3';

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface PromFamily {
  name: string;
  type: string;
  help: string;
  samples: PromSample[];
}

const SCRIPT = `
import json, math, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [{"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)} for s in f.samples]})
print(json.dumps(out))
`;

/** Throws with the parser's own message when the text is not valid exposition format. */
export function parsePrometheusText(text: string): PromFamily[] {
  if (!fs.existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: install python3 and python3-prometheus-client (apt-get install -y python3-prometheus-client)`);
  let out: string;
  try {
    out = execFileSync(PYTHON, ['-c', SCRIPT], { input: text, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (e) {
    const err = String((e as { stderr?: string }).stderr ?? (e as Error).message);
    if (/No module named .prometheus_client/.test(err)) throw new Error('the Prometheus text parser is missing: apt-get install -y python3-prometheus-client');
    throw new Error(`not valid Prometheus text format: ${err.trim().split('\n').slice(-1)[0]}`);
  }
  return JSON.parse(out) as PromFamily[];
}

/** Every sample named `name` whose labels include `match`. */
export function samples(fams: PromFamily[], name: string, match: Record<string, string> = {}): PromSample[] {
  return fams.flatMap((f) => f.samples).filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The sum of those samples' values (0 when none). */
export function total(fams: PromFamily[], name: string, match: Record<string, string> = {}): number {
  return samples(fams, name, match).reduce((a, s) => a + s.value, 0);
}

/** The one sample; throws when there is not exactly one. */
export function one(fams: PromFamily[], name: string, match: Record<string, string> = {}): number {
  const s = samples(fams, name, match);
  if (s.length !== 1) throw new Error(`expected one sample ${name}${JSON.stringify(match)}, found ${s.length}`);
  return s[0]!.value;
}
