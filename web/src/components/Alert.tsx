import type { ComponentChildren } from 'preact';

/** An error the user must see: announced by screen readers at once (role="alert"). */
export function Alert({ children, testid }: { children: ComponentChildren; testid?: string }) {
  return (
    <div class="alert" role="alert" data-testid={testid ?? 'alert'}>
      {children}
    </div>
  );
}
