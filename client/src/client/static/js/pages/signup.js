/** Sign-up page. */

import { credentialsForm } from "../credentials.js";

credentialsForm(document.getElementById("signup-form"), "/api/users/signup");
