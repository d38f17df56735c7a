/** "My tickets": every ticket the signed-in person put up, newest first, a page at a time, with
 * its state (for sale, reserved, sold); one still for sale has a link to edit it. */

import { errorsOf } from "../api.js";
import { clearPageErrors, h, onPageShow, setStatus, showPageErrors } from "../dom.js";
import { formatMoney } from "../format.js";
import { showPaged } from "../paging.js";
import { requireUser } from "../session.js";

const list = document.getElementById("my-ticket-list");
const more = document.getElementById("load-more");

// "reserved": a buyer's order holds it, not paid for yet; "sold": that order was paid for.
const STATE_LABELS = { "for sale": "For sale", reserved: "Reserved", sold: "Sold" };

function ticketItem(ticket) {
  const forSale = ticket.state === "for sale";
  return h(
    "li",
    { class: "card" },
    h("a", { class: "card-title", href: `/tickets/${ticket.id}` }, ticket.title),
    h("span", { class: "price" }, formatMoney(ticket.price)),
    h("span", { class: `badge ticket-${ticket.state.replace(" ", "-")}` }, STATE_LABELS[ticket.state] ?? ticket.state),
    // A reserved or sold ticket can no longer be edited.
    forSale
      ? h(
          "a",
          { class: "card-action", href: `/tickets/${ticket.id}/edit` },
          "Edit",
          h("span", { class: "visually-hidden" }, ` ${ticket.title}`),
        )
      : null,
  );
}

async function init() {
  clearPageErrors();
  const user = await requireUser();
  if (!user) return;
  let shown;
  try {
    shown = await showPaged(list, more, "/api/tickets/mine", ticketItem);
  } catch (error) {
    setStatus("");
    showPageErrors(errorsOf(error));
    return;
  }
  setStatus(shown ? "" : "You have no tickets yet.");
}

onPageShow(init);
