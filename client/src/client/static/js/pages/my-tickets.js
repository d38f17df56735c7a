/** "My tickets": the signed-in person's tickets for sale, each with a link to edit it. */

import { api, errorsOf } from "../api.js";
import { clearPageErrors, h, onPageShow, setStatus, showPageErrors } from "../dom.js";
import { formatMoney } from "../format.js";
import { requireUser } from "../session.js";

const list = document.getElementById("my-ticket-list");

async function init() {
  clearPageErrors();
  const user = await requireUser();
  if (!user) return;
  let tickets;
  try {
    // The API lists every ticket still for sale; a reserved one cannot be edited anyway.
    tickets = (await api("GET", "/api/tickets")).filter((ticket) => ticket.userId === user.id);
  } catch (error) {
    setStatus("");
    showPageErrors(errorsOf(error));
    return;
  }
  list.replaceChildren(
    ...tickets.map((ticket) =>
      h(
        "li",
        { class: "card" },
        h("a", { class: "card-title", href: `/tickets/${ticket.id}` }, ticket.title),
        h("span", { class: "price" }, formatMoney(ticket.price)),
        h(
          "a",
          { class: "card-action", href: `/tickets/${ticket.id}/edit` },
          "Edit",
          h("span", { class: "visually-hidden" }, ` ${ticket.title}`),
        ),
      ),
    ),
  );
  setStatus(tickets.length ? "" : "You have no tickets for sale.");
}

onPageShow(init);
