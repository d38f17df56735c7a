/** Landing page: the tickets for sale, newest first, a page at a time ("Load more"), each title
 * linking to its page, with its price. */

import { errorsOf } from "../api.js";
import { clearPageErrors, h, onPageShow, setStatus, showPageErrors } from "../dom.js";
import { formatMoney } from "../format.js";
import { showPaged } from "../paging.js";
import { loadSession } from "../session.js";

const list = document.getElementById("ticket-list");
const more = document.getElementById("load-more");

function ticketItem(ticket) {
  return h(
    "li",
    { class: "card" },
    h("a", { class: "card-title", href: `/tickets/${ticket.id}` }, ticket.title),
    h("span", { class: "price" }, formatMoney(ticket.price)),
  );
}

async function init() {
  clearPageErrors();
  const [, shown] = await Promise.all([
    loadSession(),
    showPaged(list, more, "/api/tickets", ticketItem).catch((error) => {
      showPageErrors(errorsOf(error));
      return null;
    }),
  ]);
  if (shown === null) {
    setStatus("");
    return;
  }
  setStatus(shown ? "" : "No tickets for sale right now. Check back soon.");
}

onPageShow(init);
