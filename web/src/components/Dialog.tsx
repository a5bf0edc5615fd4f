// A modal <dialog> (focus trapped and restored by the browser, Esc closes) for confirmations and
// small forms. Its action may fail: the API's message is shown in it, and it stays open.
import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';

import { errorMessage } from '../api';
import { Alert } from './Alert';

interface DialogProps {
  open: boolean;
  title: string;
  children?: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  /** Runs on confirm; the dialog closes when it resolves, shows the error when it throws. */
  onConfirm(form: FormData): Promise<void>;
  onClose(): void;
  testid?: string;
}

export function Dialog({ open, title, children, confirmLabel, danger, onConfirm, onClose, testid }: DialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const formRef = useRef<HTMLFormElement>(null);
  const titleId = useId();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) {
      setError(null);
      formRef.current?.reset();
      dialog.showModal();
    } else if (!open && dialog.open) {
      dialog.close();
    }
  }, [open]);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onConfirm(new FormData(event.currentTarget as HTMLFormElement));
      onClose();
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <dialog ref={ref} class="dialog" aria-labelledby={titleId} onClose={onClose} data-testid={testid}>
      <form ref={formRef} method="dialog" class="stack" onSubmit={submit}>
        <h2 id={titleId}>{title}</h2>
        {children}
        {error && <Alert>{error}</Alert>}
        <div class="actions">
          <button type="button" class="button secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" class={`button ${danger ? 'danger' : 'primary'}`} disabled={busy} data-testid={testid ? `${testid}-confirm` : undefined}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </div>
      </form>
    </dialog>
  );
}
