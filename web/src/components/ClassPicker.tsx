// A searchable multi-select of class labels: a filter box over a checkbox list, the chosen
// labels shown as removable chips. Plain checkboxes keep it usable with a keyboard and a
// screen reader without any ARIA widget pattern.
import { useId, useState } from 'preact/hooks';

import { labelColor } from '../format';

interface Props {
  labels: string[];
  value: string[];
  onChange(value: string[]): void;
}

/** Most labels listed at once: the filter narrows the rest down. */
const SHOWN = 200;

export function ClassPicker({ labels, value, onChange }: Props) {
  const id = useId();
  const [filter, setFilter] = useState('');
  const chosen = new Set(value);
  const needle = filter.trim().toLowerCase();
  const matching = labels.filter((label) => label.toLowerCase().includes(needle));
  const toggle = (label: string, on: boolean) =>
    onChange(on ? [...value, label] : value.filter((l) => l !== label));

  return (
    <fieldset class="class-picker">
      <legend>Classes</legend>
      <p class="help" id={`${id}-help`}>
        Keep only these classes; none chosen keeps every class.
      </p>
      {value.length > 0 && (
        <ul class="chips" aria-label="Chosen classes">
          {value.map((label) => (
            <li key={label} class="chip">
              <span class="swatch" style={{ background: labelColor(label) }} aria-hidden="true" />
              {label}
              <button type="button" class="chip-remove" aria-label={`Remove ${label}`} onClick={() => toggle(label, false)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      <label for={`${id}-filter`}>Find a class</label>
      <input
        id={`${id}-filter`}
        type="search"
        value={filter}
        aria-describedby={`${id}-help`}
        aria-controls={`${id}-list`}
        placeholder={labels.length ? `e.g. ${labels.slice(0, 2).join(', ')}` : ''}
        onInput={(e) => setFilter(e.currentTarget.value)}
        autocomplete="off"
      />
      <div class="class-list" id={`${id}-list`} role="group" aria-label="Class labels">
        {matching.slice(0, SHOWN).map((label) => (
          <label key={label} class="check">
            <input type="checkbox" checked={chosen.has(label)} onChange={(e) => toggle(label, e.currentTarget.checked)} />
            {label}
          </label>
        ))}
        {matching.length === 0 && <p class="muted">No class matches “{filter}”.</p>}
        {matching.length > SHOWN && <p class="muted">{matching.length - SHOWN} more: type to narrow the list.</p>}
      </div>
      <p class="sr-only" aria-live="polite">
        {needle ? `${matching.length} classes match` : ''}
      </p>
    </fieldset>
  );
}
