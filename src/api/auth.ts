import { createHash, timingSafeEqual } from 'node:crypto';

export type Role = 'viewer' | 'operator';

/** A bearer token as configured. `name` is who the token belongs to; it becomes the actor of manual actions. */
export interface ApiToken {
  name: string;
  token: string;
  role: Role;
}

/** Who made a request. */
export interface Principal {
  actor: string;
  role: Role;
}

/** Route access levels: public routes need nothing, viewer routes any token, operator routes an operator token. */
export type Access = 'public' | Role;

const RANK: Record<Access, number> = { public: 0, viewer: 1, operator: 2 };

export function allows(principal: Principal | null, access: Access): boolean {
  if (access === 'public') return true;
  return principal !== null && RANK[principal.role] >= RANK[access];
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/**
 * Checks presented tokens against the configured ones in constant time: both sides are hashed to the same length and
 * every configured token is compared, so neither the timing of a comparison nor the position of a match leaks.
 */
export class TokenVerifier {
  private readonly entries: { digest: Buffer; principal: Principal }[];

  constructor(tokens: readonly ApiToken[]) {
    this.entries = tokens
      .filter((t) => t.token.length > 0)
      .map((t) => ({ digest: digest(t.token), principal: { actor: t.name, role: t.role } }));
  }

  get size(): number {
    return this.entries.length;
  }

  verify(presented: string): Principal | null {
    const candidate = digest(presented);
    let found: Principal | null = null;
    for (const entry of this.entries) {
      if (timingSafeEqual(entry.digest, candidate) && found === null) found = entry.principal;
    }
    return found;
  }
}

/** Extracts the token from `Authorization: Bearer <token>`; null when absent or another scheme. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}
