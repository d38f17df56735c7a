/** A list shown a page at a time: the first page, then "Load more" until the API says no more. */

import { apiPage, errorsOf } from "./api.js";
import { showPageErrors } from "./dom.js";

/**
 * Fill `list` from `firstPath` with `render(item)` for each item; `button` loads the next page
 * and is hidden on the last one. Resolves to how many items the first page had; throws what the
 * first request threw (later failures are shown on the page).
 */
export async function showPaged(list, button, firstPath, render) {
  let next = null;
  const load = async (path, replace) => {
    const page = await apiPage(path);
    const items = page.items.map(render);
    if (replace) list.replaceChildren(...items);
    else list.append(...items);
    next = page.next;
    button.hidden = next === null;
    return page.items.length;
  };
  button.hidden = true;
  button.onclick = async () => {
    if (next === null) return;
    button.disabled = true;
    try {
      await load(next, false);
    } catch (error) {
      showPageErrors(errorsOf(error));
    } finally {
      button.disabled = false;
    }
  };
  return load(firstPath, true);
}
