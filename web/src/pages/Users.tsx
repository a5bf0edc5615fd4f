// `/users` (admins): list, create, disable, reset a password. "Deleting" a user disables it (its
// videos keep their owner); the server refuses to disable the last admin or oneself.
import { useEffect, useState } from 'preact/hooks';

import { api, API, errorMessage } from '../api';
import type { User } from '../api';
import { formatDate } from '../format';
import { useTitle } from '../router';
import { Alert } from '../components/Alert';
import { Dialog } from '../components/Dialog';

export function UsersPage({ user }: { user: User }) {
  useTitle('Users');
  const [users, setUsers] = useState<User[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [createError, setCreateError] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [disabling, setDisabling] = useState<User | null>(null);
  const [resetting, setResetting] = useState<User | null>(null);
  const [notice, setNotice] = useState('');

  const load = async () => {
    try {
      const answer = await api<{ users: User[] }>(`${API}/users`);
      setUsers(answer.users);
      setError(null);
    } catch (e) {
      setError(errorMessage(e));
    }
  };

  useEffect(() => {
    if (user.role === 'admin') void load();
  }, [user.role]);

  if (user.role !== 'admin') {
    return (
      <>
        <h1>Users</h1>
        <Alert>Only admins may manage users.</Alert>
      </>
    );
  }

  const create = async (event: Event) => {
    event.preventDefault();
    const form = event.currentTarget as HTMLFormElement;
    const data = new FormData(form);
    setCreating(true);
    setCreateError(null);
    try {
      const created = await api<User>(`${API}/users`, {
        method: 'POST',
        body: {
          username: String(data.get('username') ?? '').trim(),
          password: String(data.get('password') ?? ''),
          role: String(data.get('role') ?? 'user'),
        },
      });
      form.reset();
      setNotice(`User ${created.username} created`);
      await load();
    } catch (e) {
      setCreateError(errorMessage(e));
    } finally {
      setCreating(false);
    }
  };

  return (
    <>
      <h1>Users</h1>
      <p class="sr-only" role="status" aria-live="polite">
        {notice}
      </p>
      {error && <Alert>{error}</Alert>}

      <section class="card" aria-labelledby="users-list-title">
        <h2 id="users-list-title">Accounts</h2>
        {users === null && !error && <p role="status">Loading…</p>}
        {users && (
          <div class="table-wrap">
            <table class="users" data-testid="users-table">
              <caption class="sr-only">Users, by name</caption>
              <thead>
                <tr>
                  <th scope="col">Username</th>
                  <th scope="col">Role</th>
                  <th scope="col">State</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {users.map((u) => (
                  <tr key={u.username} data-username={u.username}>
                    <td data-label="Username">
                      {u.username}
                      {u.username === user.username && <span class="muted"> (you)</span>}
                    </td>
                    <td data-label="Role">{u.role}</td>
                    <td data-label="State">
                      {u.disabled ? (
                        <span class="badge badge-failed">disabled {u.disabled_at ? formatDate(u.disabled_at) : ''}</span>
                      ) : (
                        <span class="badge badge-succeeded">active</span>
                      )}
                    </td>
                    <td data-label="Created">{formatDate(u.created_at)}</td>
                    <td class="actions-cell">
                      <button type="button" class="button secondary small" onClick={() => setResetting(u)}>
                        Reset password<span class="sr-only"> of {u.username}</span>
                      </button>
                      {!u.disabled && u.username !== user.username && (
                        <button type="button" class="button danger small" onClick={() => setDisabling(u)}>
                          Disable<span class="sr-only"> {u.username}</span>
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>

      <section class="card" aria-labelledby="new-user-title">
        <h2 id="new-user-title">New user</h2>
        <form class="form-grid" onSubmit={create} data-testid="create-user">
          <div class="field">
            <label for="new-username">Username</label>
            <input
              id="new-username"
              name="username"
              required
              minLength={3}
              maxLength={32}
              pattern="[a-z0-9][a-z0-9._\-]*"
              autocomplete="off"
              autocapitalize="none"
              spellcheck={false}
              aria-describedby="new-username-help"
            />
            <p class="help" id="new-username-help">
              3 to 32 characters: a–z, 0–9, “.”, “_”, “-”; starts with a letter or digit.
            </p>
          </div>
          <div class="field">
            <label for="new-password">Password</label>
            <input
              id="new-password"
              name="password"
              type="password"
              required
              minLength={8}
              maxLength={1024}
              autocomplete="new-password"
              aria-describedby="new-password-help"
            />
            <p class="help" id="new-password-help">
              At least 8 characters.
            </p>
          </div>
          <div class="field">
            <label for="new-role">Role</label>
            <select id="new-role" name="role">
              <option value="user">user</option>
              <option value="admin">admin</option>
            </select>
          </div>
          <div class="field end">
            <button type="submit" class="button primary" disabled={creating}>
              {creating ? 'Creating…' : 'Create user'}
            </button>
          </div>
        </form>
        {createError && <Alert>{createError}</Alert>}
      </section>

      <Dialog
        open={disabling !== null}
        title={`Disable ${disabling?.username ?? ''}?`}
        confirmLabel="Disable"
        danger
        onConfirm={async () => {
          const name = disabling!.username;
          await api(`${API}/users/${encodeURIComponent(name)}`, { method: 'DELETE' });
          setNotice(`User ${name} disabled`);
          await load();
        }}
        onClose={() => setDisabling(null)}
      >
        <p>They can no longer log in, and their tokens stop working at once. Their videos stay.</p>
      </Dialog>

      <Dialog
        open={resetting !== null}
        title={`Reset the password of ${resetting?.username ?? ''}`}
        confirmLabel="Set password"
        onConfirm={async (form) => {
          const name = resetting!.username;
          await api(`${API}/users/${encodeURIComponent(name)}/password`, {
            method: 'PUT',
            body: { password: String(form.get('password') ?? '') },
          });
          setNotice(`Password of ${name} reset`);
        }}
        onClose={() => setResetting(null)}
      >
        <p>Their current sessions end at once.</p>
        <div class="field">
          <label for="reset-password">New password</label>
          <input id="reset-password" name="password" type="password" required minLength={8} maxLength={1024} autocomplete="new-password" />
        </div>
      </Dialog>
    </>
  );
}
