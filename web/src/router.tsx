// A tiny history-API router: the server answers index.html for every console path, and the
// app picks the page from location.pathname. No library: four routes do not need one.
import type { AnchorHTMLAttributes, ComponentChildren, TargetedMouseEvent } from 'preact';
import { useEffect, useState } from 'preact/hooks';

const NAVIGATE = 'argus:navigate';

export interface Location {
  path: string;
  search: URLSearchParams;
}

function current(): Location {
  return { path: window.location.pathname, search: new URLSearchParams(window.location.search) };
}

/** Goes to `to` (a same-origin path with an optional query) without reloading the page. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === window.location.pathname + window.location.search) return;
  if (options.replace) window.history.replaceState(null, '', to);
  else window.history.pushState(null, '', to);
  window.dispatchEvent(new Event(NAVIGATE));
  // A new page starts at its top, as a real navigation would.
  if (!options.replace) window.scrollTo(0, 0);
}

/** The current location; re-renders on navigate() and on back/forward. */
export function useLocation(): Location {
  const [location, setLocation] = useState(current);
  useEffect(() => {
    const update = () => setLocation(current());
    window.addEventListener(NAVIGATE, update);
    window.addEventListener('popstate', update);
    // A child's effect may have navigated before this one subscribed (children's effects run
    // first): catch up.
    const now = current();
    if (now.path !== location.path || now.search.toString() !== location.search.toString()) update();
    return () => {
      window.removeEventListener(NAVIGATE, update);
      window.removeEventListener('popstate', update);
    };
  }, []);
  return location;
}

/** `/videos/<id>` → `{ id }`; `null` when the path does not match the pattern. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const want = pattern.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    if (want[i].startsWith(':')) {
      if (!got[i]) return null;
      params[want[i].slice(1)] = decodeURIComponent(got[i]);
    } else if (want[i] !== got[i]) {
      return null;
    }
  }
  return params;
}

/** A same-origin path that is safe to go to after login: `/…`, never `//host` or `/\host`. */
export function safeNext(next: string | null): string {
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/';
  if (next.startsWith('/login')) return '/';
  return next;
}

type LinkProps = AnchorHTMLAttributes<HTMLAnchorElement> & { href: string; children?: ComponentChildren };

/** An <a> that navigates in-app on a plain left click (new tab, etc. still work). */
export function Link(props: LinkProps) {
  const { href, onClick, ...rest } = props;
  const click = (event: TargetedMouseEvent<HTMLAnchorElement>) => {
    if (onClick) (onClick as (e: TargetedMouseEvent<HTMLAnchorElement>) => void)(event);
    if (event.defaultPrevented || event.button !== 0) return;
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    navigate(href);
  };
  return <a href={href} onClick={click} {...rest} />;
}

/** Sets the page's <title>. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Argus` : 'Argus';
  }, [title]);
}
