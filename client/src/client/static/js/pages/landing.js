/** Landing page: every ticket for sale, its title linking to its page, and its price. */

import { api, errorsOf } from "../api.js";
import { clearPageErrors, h, onPageShow, setStatus, showPageErrors } from "../dom.js";
import { formatMoney } from "../format.js";
import { loadSession } from "../session.js";

const list = document.getElementById("ticket-list");

async function init() {
  clearPageErrors();
  const [, tickets] = await Promise.all([
    loadSession(),
    api("GET", "/api/tickets").catch((error) => {
      showPageErrors(errorsOf(error));
      return null;
    }),
  ]);
  if (tickets === null) {
    setStatus("");
    return;
  }
  list.replaceChildren(
    ...tickets.map((ticket) =>
      h(
        "li",
        { class: "card" },
        h("a", { class: "card-title", href: `/tickets/${ticket.id}` }, ticket.title),
        h("span", { class: "price" }, formatMoney(ticket.price)),
      ),
    ),
  );
  setStatus(tickets.length ? "" : "No tickets for sale right now. Check back soon.");
}

onPageShow(init);
