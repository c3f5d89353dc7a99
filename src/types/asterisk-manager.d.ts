/**
 * Types for the npm package `asterisk-manager` 0.2.0 (plain JS, no published types). Only what Foresight uses and
 * what the domain README (section D) verified; see docs/ami.md for its known problems.
 */
declare module 'asterisk-manager' {
  /** A parsed AMI message: keys lower-cased; repeated keys become arrays (`output` is a string for one line!). */
  export type ManagerMessage = Record<string, string | string[] | Record<string, string> | undefined>;

  export type ManagerCallback = (err: ManagerMessage | Error | null | undefined, res?: ManagerMessage) => void;

  export interface Manager {
    readonly options: { port: number | undefined; host: string; username: string; password: string; events: boolean };
    connect(port: number, host: string, callback?: (err: null) => void): void;
    /** Logs in with the constructor's credentials; sends `Event: on|off`, which Asterisk ignores. */
    login(callback?: (err?: ManagerMessage) => void): void;
    /** Returns the ActionID; a custom one is honoured only as lower-case `actionid`. No timeout. */
    action(action: Record<string, unknown>, callback?: ManagerCallback): string;
    disconnect(callback?: () => void): void;
    isConnected(): boolean;
    connected(): boolean;
    /** Arms reconnection only if called before the socket opens. */
    keepConnected(): void;
    on(event: string, listener: (...args: never[]) => void): Manager;
    once(event: string, listener: (...args: never[]) => void): Manager;
    removeListener(event: string, listener: (...args: never[]) => void): Manager;
    removeAllListeners(event?: string): Manager;
    listeners(event: string): ((...args: never[]) => void)[];
    setMaxListeners(n: number): Manager;
    emit(event: string, ...args: unknown[]): boolean;
  }

  interface ManagerFactory {
    (port?: number, host?: string, username?: string, password?: string, events?: boolean): Manager;
    new (port?: number, host?: string, username?: string, password?: string, events?: boolean): Manager;
  }

  const Manager: ManagerFactory;
  export default Manager;
}
