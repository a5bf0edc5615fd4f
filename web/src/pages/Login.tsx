// /login: the OAuth2 password flow of /api/v1/auth/token, then the user from /auth/me.
import { useEffect, useRef, useState } from 'preact/hooks';

import { api, API, errorMessage } from '../api';
import type { TokenResponse, User } from '../api';
import { clearToken, saveToken, setUser } from '../auth';
import { navigate, safeNext, useTitle } from '../router';
import { Alert } from '../components/Alert';

export function Login({ next }: { next: string | null }) {
  useTitle('Log in');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const username = useRef<HTMLInputElement>(null);
  useEffect(() => username.current?.focus(), []);

  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget as HTMLFormElement);
    setBusy(true);
    setError(null);
    try {
      const body = new URLSearchParams({
        username: String(form.get('username') ?? '').trim(),
        password: String(form.get('password') ?? ''),
      });
      const token = await api<TokenResponse>(`${API}/auth/token`, { method: 'POST', body, auth: false });
      saveToken(token.access_token, token.expires_in);
      setUser(await api<User>(`${API}/auth/me`));
      navigate(safeNext(next), { replace: true });
    } catch (e) {
      clearToken();
      setError(errorMessage(e));
      setBusy(false);
    }
  };

  return (
    <div class="login">
      <h1>Log in to Argus</h1>
      {next && next !== '/' && <p class="muted">Log in to continue.</p>}
      <form class="card stack" onSubmit={submit} method="post" action="/login">
        <div class="field">
          <label for="login-username">Username</label>
          <input
            ref={username}
            id="login-username"
            name="username"
            autocomplete="username"
            autocapitalize="none"
            spellcheck={false}
            required
          />
        </div>
        <div class="field">
          <label for="login-password">Password</label>
          <input id="login-password" name="password" type="password" autocomplete="current-password" required />
        </div>
        {error && <Alert testid="login-error">{error}</Alert>}
        <button type="submit" class="button primary" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </div>
  );
}
