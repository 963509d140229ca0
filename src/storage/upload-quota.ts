/**
 * Per-client bounds on open uploads (docs/storage.md, "Per-client limits"): a pure tracker,
 * time passed in. Without it one client declaring a 100 GiB upload and sending 4 bytes
 * reserved the whole quota, and every other upload was refused until the upload aged out an
 * hour later. Now each client key may hold at most maxUploadsPerClient open uploads and
 * maxReservedBytesPerClient declared bytes, and an upload that receives no chunk for
 * uploadIdleMs is discarded.
 */
import { GridError } from '../common';

export interface UploadQuotaLimits {
  maxUploadsPerClient: number;
  maxReservedBytesPerClient: number;
  uploadIdleMs: number;
}

interface Open {
  owner: string;
  length: number;
  lastMs: number;
}

export class UploadQuota {
  private readonly open = new Map<string, Open>();
  private readonly byOwner = new Map<string, { count: number; bytes: number }>();

  constructor(private readonly limits: UploadQuotaLimits) {}

  /** Is this upload tracked (opened by some client since this node started)? */
  has(fileUuid: string): boolean {
    return this.open.has(fileUuid);
  }

  /**
   * A client opens an upload of `length` declared bytes: UNAVAILABLE when it holds too many
   * open uploads, QUOTA_EXCEEDED when it would reserve too many bytes. `who` names it in the
   * error (its key's name).
   */
  begin(fileUuid: string, owner: string, length: number, nowMs: number, who = owner): void {
    if (this.open.has(fileUuid)) return this.touch(fileUuid, nowMs);
    const o = this.byOwner.get(owner) ?? { count: 0, bytes: 0 };
    if (o.count >= this.limits.maxUploadsPerClient) {
      throw new GridError('UNAVAILABLE', `client ${who} has ${o.count} uploads open, the limit per client (maxUploadsPerClient) is ${this.limits.maxUploadsPerClient}`, 'finish or abandon an upload first (idle ones are dropped after uploadIdleMs)');
    }
    if (o.bytes + length > this.limits.maxReservedBytesPerClient) {
      throw new GridError(
        'QUOTA_EXCEEDED',
        `client ${who} would reserve ${o.bytes + length} bytes in open uploads; the limit per client (maxReservedBytesPerClient) is ${this.limits.maxReservedBytesPerClient}`,
        'upload fewer or smaller files at once',
      );
    }
    this.open.set(fileUuid, { owner, length, lastMs: nowMs });
    this.byOwner.set(owner, { count: o.count + 1, bytes: o.bytes + length });
  }

  touch(fileUuid: string, nowMs: number): void {
    const u = this.open.get(fileUuid);
    if (u) u.lastMs = nowMs;
  }

  /** The upload ended (stored, discarded or refused). */
  end(fileUuid: string): void {
    const u = this.open.get(fileUuid);
    if (!u) return;
    this.open.delete(fileUuid);
    const o = this.byOwner.get(u.owner)!;
    if (o.count <= 1) this.byOwner.delete(u.owner);
    else this.byOwner.set(u.owner, { count: o.count - 1, bytes: o.bytes - u.length });
  }

  /** Uploads idle for uploadIdleMs or longer (the shell discards them and calls end()). */
  idle(nowMs: number): string[] {
    const out: string[] = [];
    for (const [id, u] of this.open) if (nowMs - u.lastMs >= this.limits.uploadIdleMs) out.push(id);
    return out;
  }

  get size(): number {
    return this.open.size;
  }
}
