// Mounts the console and picks the page from the path. Every page but /login needs a session:
// without a (live) token it goes to /login?next=<here>; with one, the user is fetched once
// from /auth/me before the page renders.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

import './styles.css';
import { api, API, errorMessage } from './api';
import { expireSession, getToken, loginPath, logout, onSessionChange, session, setUser, tokenExpiry, TOKEN_KEY } from './auth';
import type { User } from './auth';
import { Link, match, navigate, useLocation, useTitle } from './router';
import { Alert } from './components/Alert';
import { Login } from './pages/Login';
import { VideosPage } from './pages/Videos';
import { VideoPage } from './pages/Video';
import { UsersPage } from './pages/Users';

function useSessionUser(): User | null {
  const [user, set] = useState(session.user);
  useEffect(() => onSessionChange(() => set(session.user)), []);
  return user;
}

function Header({ user, path }: { user: User | null; path: string }) {
  const current = (href: string) => (path === href || (href === '/' && path.startsWith('/videos/')) ? 'page' : undefined);
  return (
    <header class="site-header">
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <div class="header-inner">
        <Link href="/" class="brand">
          <img src="/favicon.svg" alt="" width={24} height={24} />
          <span>Argus</span>
        </Link>
        {user && (
          <nav aria-label="Main">
            <ul>
              <li>
                <Link href="/" aria-current={current('/')}>
                  Videos
                </Link>
              </li>
              {user.role === 'admin' && (
                <li>
                  <Link href="/users" aria-current={current('/users')}>
                    Users
                  </Link>
                </li>
              )}
            </ul>
          </nav>
        )}
        {user && (
          <div class="header-user">
            <span class="muted" data-testid="current-user">
              {user.username}
              {user.role === 'admin' ? ' (admin)' : ''}
            </span>
            <button type="button" class="button secondary" onClick={logout} data-testid="logout">
              Log out
            </button>
          </div>
        )}
      </div>
    </header>
  );
}

function NotFound() {
  useTitle('Not found');
  return (
    <>
      <h1>Page not found</h1>
      <p>
        There is nothing at this address. <Link href="/">Go to your videos</Link>.
      </p>
    </>
  );
}

/** Loads the user behind the stored token once, then renders `children`. */
function Authenticated({ user, children }: { user: User | null; children: () => preact.ComponentChildren }) {
  const [error, setError] = useState<string | null>(null);
  const token = getToken();
  useEffect(() => {
    if (!token) {
      navigate(loginPath(), { replace: true });
      return;
    }
    if (user) return;
    let live = true;
    api<User>(`${API}/auth/me`)
      .then((me) => live && setUser(me))
      .catch((e) => live && setError(errorMessage(e)));
    return () => {
      live = false;
    };
  }, [token, user]);
  if (!token) return null;
  if (error) return <Alert>{error}</Alert>;
  if (!user) return <p class="muted" role="status">Loading…</p>;
  return <>{children()}</>;
}

function App() {
  const location = useLocation();
  const user = useSessionUser();
  const path = location.path;

  // The token lapses while the page is open: ask for a login at that moment, not on the next
  // click. Another tab logging out (the storage event) does the same here.
  useEffect(() => {
    const expiry = tokenExpiry();
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (expiry && user) timer = setTimeout(expireSession, Math.min(Math.max(0, expiry - Date.now()), 2 ** 31 - 1));
    const storage = (event: StorageEvent) => {
      if (event.key === TOKEN_KEY && !event.newValue && session.user) expireSession();
    };
    window.addEventListener('storage', storage);
    return () => {
      clearTimeout(timer);
      window.removeEventListener('storage', storage);
    };
  }, [user]);

  // After an in-app navigation, move focus to the new page (as a page load would), unless the
  // page has put it somewhere itself (the login form's first field).
  const firstPath = useRef(true);
  useEffect(() => {
    if (firstPath.current) {
      firstPath.current = false;
      return;
    }
    const main = document.getElementById('main');
    const active = document.activeElement;
    if (main && (!active || active === document.body || !main.contains(active))) main.focus({ preventScroll: true });
  }, [path]);

  let page: preact.ComponentChildren;
  let videoId: string | undefined;
  if (path === '/login') {
    page = <Login next={location.search.get('next')} />;
  } else if (path === '/') {
    page = <Authenticated user={user}>{() => <VideosPage user={user!} />}</Authenticated>;
  } else if ((videoId = match('/videos/:id', path)?.id)) {
    const id = videoId;
    page = <Authenticated user={user}>{() => <VideoPage key={id} id={id} user={user!} />}</Authenticated>;
  } else if (path === '/users') {
    page = <Authenticated user={user}>{() => <UsersPage user={user!} />}</Authenticated>;
  } else {
    page = <NotFound />;
  }

  return (
    <>
      <Header user={path === '/login' ? null : user} path={path} />
      <main id="main" tabIndex={-1}>
        {page}
      </main>
    </>
  );
}

render(<App />, document.getElementById('app')!);
