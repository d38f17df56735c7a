/** The "page not found" page: only the header needs to know who is signed in. */

import { loadSession } from "../session.js";

loadSession();
