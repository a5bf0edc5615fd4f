// The session: the bearer token (with its expiry) in localStorage, so that a reload or a second
// tab stays logged in, and the user it belongs to in memory. The token never goes into a URL.
import { navigate } from './router';

export const TOKEN_KEY = 'argus.token';

export interface StoredToken {
  access_token: string;
  /** Milliseconds since the epoch. */
  expires_at: number;
}

export interface User {
  username: string;
  role: 'admin' | 'user';
  disabled?: boolean;
  created_at?: string;
  disabled_at?: string;
}

function read(): StoredToken | null {
  try {
    const raw = localStorage.getItem(TOKEN_KEY);
    if (!raw) return null;
    const parsed = JSON.parse(raw) as Partial<StoredToken>;
    if (typeof parsed.access_token !== 'string' || typeof parsed.expires_at !== 'number') return null;
    return parsed as StoredToken;
  } catch {
    // Unreadable (private mode, garbage): as if logged out.
    return null;
  }
}

/** The bearer token, or null when there is none or it has expired (then it is dropped). */
export function getToken(): string | null {
  const stored = read();
  if (!stored) return null;
  if (Date.now() >= stored.expires_at) {
    clearToken();
    return null;
  }
  return stored.access_token;
}

/** When the stored token expires (ms since the epoch), or null. */
export function tokenExpiry(): number | null {
  return read()?.expires_at ?? null;
}

export function saveToken(accessToken: string, expiresIn: number): void {
  // A few seconds early, so that a request is never sent with a token about to lapse.
  const expires_at = Date.now() + Math.max(0, expiresIn - 5) * 1000;
  localStorage.setItem(TOKEN_KEY, JSON.stringify({ access_token: accessToken, expires_at }));
}

export function clearToken(): void {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    /* nothing stored */
  }
  session.user = null;
  notify();
}

// --- the logged-in user, shared by the header and the pages ---------------------------------

export const session: { user: User | null } = { user: null };
const listeners = new Set<() => void>();

export function setUser(user: User | null): void {
  session.user = user;
  notify();
}

export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function notify(): void {
  for (const listener of listeners) listener();
}

/** The login page's address that comes back here afterwards. */
export function loginPath(): string {
  const here = window.location.pathname + window.location.search;
  return here === '/' || here.startsWith('/login') ? '/login' : `/login?next=${encodeURIComponent(here)}`;
}

/** The token is no longer good (401, expired): drop it and ask for a login. */
export function expireSession(): void {
  const target = loginPath();
  clearToken();
  if (!window.location.pathname.startsWith('/login')) navigate(target, { replace: true });
}

export function logout(): void {
  clearToken();
  navigate('/login');
}
