import type { VideoStatus } from '../api';

/** A video's status as a coloured badge (the word itself carries the meaning, not the colour). */
export function StatusBadge({ status }: { status: VideoStatus }) {
  return (
    <span class={`badge badge-${status}`} data-testid="status">
      {status}
    </span>
  );
}
