/**
 * The master's replicated commands: what a Raft entry holds, and how it is applied to
 * JobStore. Apply is deterministic (time travels inside the command) and idempotent, and
 * notes the applied index in the same transaction, so a restart re-applies nothing twice.
 */
import { GridError } from '../common';
import { JobStore, ResultCommand, StoreEffect, SubmitCommand } from './store';

export interface StartedNote {
  jobUuid: string;
  taskIndex: number;
  attempt: number;
  workerUuid: string;
}

export type Command =
  | { k: 'submit'; c: SubmitCommand }
  | { k: 'started'; list: StartedNote[] }
  | { k: 'results'; results: ResultCommand[]; nowMs: number }
  | { k: 'cancel'; jobUuid: string; nowMs: number }
  /** a new dispatch lease epoch (docs/balancer.md, "The lease") */
  | { k: 'lease'; epoch: number; holder: string; role: 'primary' | 'auxiliary' }
  | { k: 'notify'; jobUuid: string; url: string }
  | { k: 'notified'; jobUuid: string; delivered: boolean; attempts: number; error: string; nowMs: number };

export type ApplyResult =
  | { k: 'submit'; created: boolean; taskCount: number }
  | { k: 'results'; effects: StoreEffect[] }
  | { k: 'cancel'; found: boolean; cancelled: boolean }
  | { k: 'started' }
  | { k: 'lease'; changed: boolean }
  | { k: 'notify' }
  | { k: 'refused'; code: GridError['code']; message: string; hint?: string };

/** Applies one committed command at `index`. A refused command still advances the index. */
export function applyCommand(store: JobStore, index: number, data: Buffer): ApplyResult {
  const cmd = JSON.parse(data.toString()) as Command;
  let result: ApplyResult | undefined;
  store.db.transaction(() => {
    try {
      result = run(store, cmd);
    } catch (e) {
      if (!(e instanceof GridError)) throw e;
      result = { k: 'refused', code: e.code, message: e.message, hint: e.hint };
    }
    store.setApplied(index);
  })();
  return result!;
}

function run(store: JobStore, cmd: Command): ApplyResult {
  switch (cmd.k) {
    case 'submit':
      return { k: 'submit', ...store.submit(cmd.c) };
    case 'started':
      for (const s of cmd.list) store.taskStarted(s.jobUuid, s.taskIndex, s.attempt, s.workerUuid);
      return { k: 'started' };
    case 'results':
      return { k: 'results', effects: store.recordResults(cmd.results, cmd.nowMs) };
    case 'cancel':
      return { k: 'cancel', ...store.cancel(cmd.jobUuid, cmd.nowMs) };
    case 'lease':
      return { k: 'lease', changed: store.setLease(cmd.epoch, cmd.holder, cmd.role) };
    case 'notify':
      store.setNotify(cmd.jobUuid, cmd.url);
      return { k: 'notify' };
    case 'notified':
      store.notified(cmd.jobUuid, cmd.delivered, cmd.attempts, cmd.error, cmd.nowMs);
      return { k: 'notify' };
  }
}
