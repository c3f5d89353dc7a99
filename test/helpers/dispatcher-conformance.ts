import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Dispatcher } from '../../src/actions/ports.js';
import { ForesightError } from '../../src/errors.js';

/**
 * Behaviour every Dispatcher (Kamailio JSON-RPC, simulated) must share, registered as vitest tests.
 * The contract: list() reports every destination with a known state; drain/activate are idempotent and visible in the
 * next list(); they touch only the named destination; an unknown destination or set is a ForesightError
 * FORESIGHT_ERR_NOT_FOUND naming the address, and an invalid argument is FORESIGHT_ERR_BAD_REQUEST.
 */
export interface ConformanceSubject {
  dispatcher: Dispatcher;
  /** A set with at least two destinations, and one of them to drain and re-activate. */
  setId: number;
  uri: string;
  /** Called after the suite (e.g. close sockets); the destination is re-activated before this. */
  teardown?: () => Promise<void>;
}

const STATES = ['active', 'inactive', 'disabled', 'trying'];

export function describeDispatcherConformance(label: string, factory: () => Promise<ConformanceSubject>): void {
  describe(`Dispatcher conformance: ${label}`, () => {
    let subject: ConformanceSubject;

    const stateOf = async (uri: string) => {
      const found = (await subject.dispatcher.list()).find(
        (d) => d.setId === subject.setId && d.uri.toLowerCase() === uri.toLowerCase(),
      );
      expect(found, `${uri} listed in set ${subject.setId}`).toBeDefined();
      return found?.state;
    };

    beforeAll(async () => {
      subject = await factory();
      await subject.dispatcher.activate(subject.setId, subject.uri);
    });

    afterAll(async () => {
      if (!subject) return;
      await subject.dispatcher.activate(subject.setId, subject.uri).catch(() => undefined);
      await subject.teardown?.();
    });

    it('lists destinations with a known state, flags and latency field', async () => {
      const list = await subject.dispatcher.list();
      const inSet = list.filter((d) => d.setId === subject.setId);
      expect(inSet.length).toBeGreaterThanOrEqual(2);
      for (const d of list) {
        expect(Number.isInteger(d.setId)).toBe(true);
        expect(d.uri).toMatch(/^sips?:/i);
        expect(STATES).toContain(d.state);
        expect(typeof d.probing).toBe('boolean');
        expect(typeof d.flags).toBe('string');
        expect(d.latencyAvgMs === null || (Number.isFinite(d.latencyAvgMs) && d.latencyAvgMs >= 0)).toBe(true);
      }
      expect(inSet.map((d) => d.uri.toLowerCase())).toContain(subject.uri.toLowerCase());
    });

    it('drain shows the destination disabled in the next list, and only that one', async () => {
      const before = (await subject.dispatcher.list()).filter((d) => d.setId === subject.setId);
      await subject.dispatcher.drain(subject.setId, subject.uri);
      const after = (await subject.dispatcher.list()).filter((d) => d.setId === subject.setId);
      for (const d of after) {
        if (d.uri.toLowerCase() === subject.uri.toLowerCase()) {
          expect(d.state).toBe('disabled');
        } else {
          expect(d.state).toBe(before.find((b) => b.uri === d.uri)?.state);
        }
      }
    });

    it('drain is idempotent', async () => {
      await subject.dispatcher.drain(subject.setId, subject.uri);
      await subject.dispatcher.drain(subject.setId, subject.uri);
      expect(await stateOf(subject.uri)).toBe('disabled');
    });

    it('activate puts the destination back and is idempotent', async () => {
      await subject.dispatcher.drain(subject.setId, subject.uri);
      await subject.dispatcher.activate(subject.setId, subject.uri);
      expect(await stateOf(subject.uri)).toBe('active');
      await subject.dispatcher.activate(subject.setId, subject.uri);
      expect(await stateOf(subject.uri)).toBe('active');
    });

    it('matches the address case-insensitively', async () => {
      await subject.dispatcher.drain(subject.setId, subject.uri.toUpperCase().replace(/^SIP/, 'sip'));
      expect(await stateOf(subject.uri)).toBe('disabled');
      await subject.dispatcher.activate(subject.setId, subject.uri);
    });

    it('rejects an unknown destination or set with a NOT_FOUND error naming it', async () => {
      const unknown = 'sip:192.0.2.1:5999';
      for (const call of [
        () => subject.dispatcher.drain(subject.setId, unknown),
        () => subject.dispatcher.activate(subject.setId, unknown),
      ]) {
        const err = await call().then(
          () => null,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(ForesightError);
        expect((err as ForesightError).code).toBe('FORESIGHT_ERR_NOT_FOUND');
        expect((err as ForesightError).message).toContain(unknown);
      }
      const wrongSet = await subject.dispatcher.drain(987654, subject.uri).then(
        () => null,
        (e: unknown) => e,
      );
      expect((wrongSet as ForesightError).code).toBe('FORESIGHT_ERR_NOT_FOUND');
      expect(await stateOf(subject.uri)).toBe('active');
    });

    it('rejects invalid arguments with BAD_REQUEST', async () => {
      for (const call of [
        () => subject.dispatcher.drain(1.5, subject.uri),
        () => subject.dispatcher.drain(-1, subject.uri),
        () => subject.dispatcher.drain(subject.setId, 'not a uri'),
      ]) {
        const err = await call().then(
          () => null,
          (e: unknown) => e,
        );
        expect((err as ForesightError | null)?.code).toBe('FORESIGHT_ERR_BAD_REQUEST');
      }
    });
  });
}
