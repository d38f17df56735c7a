/** Sign-out page: ends the session, then shows the tickets for sale. */

import { api, errorsOf } from "../api.js";
import { onPageShow, setStatus, showPageErrors } from "../dom.js";

onPageShow(async () => {
  try {
    await api("POST", "/api/users/signout", {});
    window.location.replace("/");
  } catch (error) {
    setStatus("");
    showPageErrors(errorsOf(error));
  }
});
