import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ForesightError, isRetriable } from '../../src/errors.js';

describe('error codes', () => {
  it('every code is documented in docs/errors.md with its status', () => {
    const doc = readFileSync('docs/errors.md', 'utf8');
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      const row = doc.split('\n').find((line) => line.includes(`\`${code}\``));
      expect(row, `${code} missing from docs/errors.md`).toBeDefined();
      expect(row).toContain(`| ${spec.status} |`);
      expect(row).toContain(spec.retriable ? '| yes |' : '| no |');
    }
  });

  it('carries status, retriable flag and cause', () => {
    const cause = new Error('socket hang up');
    const err = new ForesightError('FORESIGHT_ERR_DISPATCHER', 'cannot reach kamailio', { cause });
    expect(err.status).toBe(502);
    expect(isRetriable(err)).toBe(true);
    expect(err.cause).toBe(cause);
    expect(isRetriable(new ForesightError('FORESIGHT_ERR_BAD_MESSAGE'))).toBe(false);
    expect(isRetriable(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBe(true);
  });
});
