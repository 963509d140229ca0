/**
 * The storage node's Prometheus metrics (docs/operations.md "Metrics"), read on scrape from
 * its status snapshot: what it stores (files, bytes, chunks) against its quota, open
 * uploads, requests by message type, corrupt chunks found, and the last scrub. Replica
 * counts arrive with replicated storage; a node of today holds one copy of each file.
 */
import { NodeMetrics, Sample, ServerStats } from '../common';

/** The parts of StorageNode.status() the metrics read; read defensively. */
export interface StorageSnapshot {
  files?: number;
  bytesStored?: number;
  chunks?: number;
  quotaBytes?: number;
  reservedBytes?: number;
  uploads?: { open?: number; stagingBytes?: number };
  requests?: { byType?: Record<string, number> };
  corruptChunksSeen?: unknown[];
  scrub?: { last?: { chunksChecked?: number; bytesChecked?: number; corruptCount?: number; finishedAtMs?: number } | null };
}

export function storageMetrics(nodeId: string, snapshot: () => StorageSnapshot, server: () => ServerStats): NodeMetrics {
  const m = new NodeMetrics({ role: 'storage', nodeId });
  let last: { atMs: number; s: StorageSnapshot } | undefined;
  const snap = (): StorageSnapshot => {
    const now = Date.now();
    if (!last || now - last.atMs > 100) last = { atMs: now, s: snapshot() };
    return last.s;
  };
  m.gauge('grid_storage_files', 'files this storage node holds (each once: content addressed)', [], () => snap().files ?? 0);
  m.gauge('grid_storage_bytes', 'bytes by kind: stored (file contents), reserved (stored + open uploads), staging (received of open uploads), quota', ['kind'], () => {
    const s = snap();
    const out: Sample[] = [];
    for (const [kind, v] of [
      ['stored', s.bytesStored],
      ['reserved', s.reservedBytes],
      ['staging', s.uploads?.stagingBytes],
      ['quota', s.quotaBytes],
    ] as const) {
      if (typeof v === 'number') out.push([{ kind }, v]);
    }
    return out;
  });
  m.gauge('grid_storage_chunks', 'chunks this storage node holds', [], () => snap().chunks ?? 0);
  m.gauge('grid_storage_uploads_open', 'upload sessions not finished yet', [], () => snap().uploads?.open ?? 0);
  m.gauge('grid_storage_corrupt_chunks', 'chunks found corrupt (checksum mismatch) since start; never served', [], () => snap().corruptChunksSeen?.length ?? 0);
  m.counter('grid_storage_requests_total', 'requests served, by message type', ['type'], () => Object.entries(snap().requests?.byType ?? {}).map(([type, n]): Sample => [{ type }, n]));
  m.gauge('grid_storage_last_scrub_chunks', 'chunks checked by the last finished scrub', [], () => snap().scrub?.last?.chunksChecked ?? 0);
  m.gauge('grid_storage_last_scrub_corrupt', 'corrupt chunks the last finished scrub found', [], () => snap().scrub?.last?.corruptCount ?? 0);
  m.rpcServer(server);
  return m;
}
