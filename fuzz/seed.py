"""Seeds a fresh MediLink server for fuzzing: a patient, an approved doctor open around the
clock and a booked appointment, so that the fuzzer's requests can name real objects.

Usage: seed.py BASE_URL ADMIN_EMAIL ADMIN_PASSWORD OUT_DIR
Writes OUT_DIR/ids.dict (a Schemathesis dictionary of ids) and OUT_DIR/tokens.env (the
access tokens of the patient, the doctor and the admin, for the shell).
"""

import datetime
import json
import sys
import uuid

import requests

PASSWORD = "fuzzing password 1"
WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]


def main(base, admin_email, admin_password, out_dir):
    url = f"{base}/graphql"

    def gql(query, variables=None, token=None):
        headers = {"authorization": f"Bearer {token}"} if token else {}
        body = requests.post(url, json={"query": query, "variables": variables or {}}, headers=headers, timeout=30).json()
        if body.get("errors"):
            sys.exit(f"seeding failed: {query}: {body['errors']}")
        return body["data"]

    def register(role):
        data = gql(
            "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }",
            {"i": {"email": f"fuzz-{role.lower()}-{uuid.uuid4().hex}@example.com", "password": PASSWORD, "name": f"Fuzz {role}", "role": role}},
        )["register"]
        return data["accessToken"], data["user"]["id"]

    patient_token, patient_id = register("PATIENT")
    doctor_token, doctor_user_id = register("DOCTOR")
    admin = gql(
        "mutation($i: LoginInput!) { login(input: $i) { accessToken user { id } } }",
        {"i": {"email": admin_email, "password": admin_password}},
    )["login"]

    profile = {
        "specialization": "Cardiology", "qualifications": ["MD"], "experienceYears": 10,
        "consultationFee": {"amount": 5000, "currency": "usd"}, "languages": ["English"],
        "licenceNumber": "FUZZ-1", "bio": "Seeded for fuzzing.",
    }
    operations = {
        "query": "mutation($i: DoctorProfileInput!, $l: Upload!) { submitDoctorProfile(input: $i, licence: $l) { id } }",
        "variables": {"i": profile, "l": None},
    }
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    submitted = requests.post(
        url,
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.l"]})},
        files={"0": ("licence.pdf", pdf, "application/pdf")},
        headers={"authorization": f"Bearer {doctor_token}"},
        timeout=30,
    ).json()
    if submitted.get("errors"):
        sys.exit(f"seeding failed: submitDoctorProfile: {submitted['errors']}")
    doctor_id = submitted["data"]["submitDoctorProfile"]["id"]
    gql("mutation($id: ID!) { approveDoctor(id: $id) { id } }", {"id": doctor_id}, admin["accessToken"])
    gql(
        "mutation($i: ScheduleInput!) { setSchedule(input: $i) { slotMinutes } }",
        {"i": {"timeZone": "UTC", "slotMinutes": 30, "minNoticeMinutes": 0, "cancellationNoticeMinutes": 60,
               "weekly": [{"weekday": d, "start": "00:00", "end": "23:59"} for d in WEEKDAYS]}},
        doctor_token,
    )
    today = datetime.date.today()
    slots = gql(
        "query($d: ID!, $f: Date!, $t: Date!) { availableSlots(doctorId: $d, from: $f, to: $t) { startsAt } }",
        {"d": doctor_id, "f": str(today + datetime.timedelta(days=1)), "t": str(today + datetime.timedelta(days=2))},
    )["availableSlots"]
    appointment_id = gql(
        "mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) { id } }",
        {"i": {"doctorId": doctor_id, "startsAt": slots[0]["startsAt"]}},
        patient_token,
    )["bookAppointment"]["id"]

    ids = {"patient": patient_id, "doctor_user": doctor_user_id, "admin": admin["user"]["id"],
           "doctor": doctor_id, "appointment": appointment_id}
    with open(f"{out_dir}/ids.dict", "w") as out:
        for name, value in ids.items():
            out.write(f'{name}="{value}"\n')
    with open(f"{out_dir}/tokens.env", "w") as out:
        out.write(f"PATIENT_TOKEN={patient_token}\nDOCTOR_TOKEN={doctor_token}\nADMIN_TOKEN={admin['accessToken']}\n")


if __name__ == "__main__":
    main(*sys.argv[1:5])
