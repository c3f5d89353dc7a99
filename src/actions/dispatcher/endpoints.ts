/** `actions.dispatcher` as far as the Kamailio endpoints go (src/config/schema.ts). */
export interface DispatcherEndpointConfig {
  rpcUrl?: string | undefined;
  rpcUrls?: readonly (string | { name: string; url: string })[] | undefined;
  timeoutMs: number;
}

export const DEFAULT_RPC_URL = 'http://127.0.0.1:5080/RPC';

/** The configured proxies, named: a plain URL in rpcUrls is `proxy<position>`; a single rpcUrl is `proxy1`. */
export function proxyEndpoints(d: Omit<DispatcherEndpointConfig, 'timeoutMs'>): { name: string; url: string }[] {
  if (d.rpcUrls) return d.rpcUrls.map((e, i) => (typeof e === 'string' ? { name: `proxy${i + 1}`, url: e } : e));
  return [{ name: 'proxy1', url: d.rpcUrl ?? DEFAULT_RPC_URL }];
}
